#!/usr/bin/env python3
"""Check the package's layer rule: a module imports only from its own layer or below.

    python tools/check_layers.py            # exit 1 and one line per upward import
    python tools/check_layers.py --graph    # also print every cross-module edge

Reads the sources with ``ast`` (nothing is imported), so it runs without ROS, ONNX Runtime
or a GPU. Counted: ``import``/``from ... import`` anywhere in a module (also inside
functions and ``TYPE_CHECKING`` blocks) and ``importlib.import_module("edge_trt_ros...")``
with a literal name. The layers are the ones in the README's code map.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

PACKAGE = "edge_trt_ros"
# Lowest first. A key is a module or a subpackage (its modules inherit the layer).
LAYERS: dict[str, int] = {
    "errors": 1, "choices": 1, "files": 1, "resources": 1,
    "vision": 1, "dataset": 1, "power": 1, "gpu": 1,
    "engines": 2, "evaluation": 2, "model_info": 2, "macs": 2,
    "detector": 3, "variants": 3, "runtime": 3, "adaptive": 3,
    "cli": 4, "reports": 4,
    "ros": 5,
    "msg": 5, "srv": 5,  # the generated ROS interfaces (only the ROS layer may use them)
}
LAYER_NAMES = {1: "base", 2: "engines", 3: "pipeline", 4: "tools", 5: "ROS"}


class Unlisted(LookupError):
    """A module of the package that the layer table does not place."""


def layer_of(module: str) -> int | None:
    """Layer of ``edge_trt_ros.a.b`` (None for the package root, which anyone may import)."""
    parts = module.split(".")
    if parts[0] != PACKAGE or len(parts) == 1:
        return None
    if parts[1] not in LAYERS:
        raise Unlisted(f"{module} has no layer: add it to LAYERS in tools/check_layers.py "
                       "and to the README's code map")
    return LAYERS[parts[1]]


def module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, imported module) for every import of this package in ``tree``."""
    found: list[tuple[int, str]] = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found += [(node.lineno, target)]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value))
    return [(line, name) for line, name in found
            if name == PACKAGE or name.startswith(PACKAGE + ".")]


def check(root: Path) -> tuple[list[str], list[str]]:
    """(violations, edges) for the package under ``root`` (the repository root)."""
    violations: list[str] = []
    edges: list[str] = []
    for path in sorted((root / PACKAGE).rglob("*.py")):
        module = module_name(path, root)
        try:
            mine = layer_of(module)
        except Unlisted as exc:
            violations.append(f"{path.relative_to(root)}: {exc}")
            continue
        tree = ast.parse(path.read_text(), str(path))
        for line, target in imports_of(tree, module, path.name == "__init__.py"):
            try:
                theirs = layer_of(target)
            except Unlisted:
                continue  # reported where that module's own file is checked
            if theirs is None or target.split(".")[:2] == module.split(".")[:2]:
                continue
            edges.append(f"{module} -> {target}")
            if mine is not None and theirs > mine:
                violations.append(
                    f"{path.relative_to(root)}:{line}: {module} (layer {mine}, "
                    f"{LAYER_NAMES[mine]}) imports {target} (layer {theirs}, "
                    f"{LAYER_NAMES[theirs]})")
    return violations, edges


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--graph", action="store_true", help="print every cross-module edge")
    args = parser.parse_args(argv)
    violations, edges = check(args.root)
    if args.graph:
        print("\n".join(sorted(set(edges))))
    for v in violations:
        print(v)
    print(f"{len(set(edges))} cross-module imports checked, {len(violations)} upward",
          file=sys.stderr)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
