"""detector.launch.py: loaded for real where launch_ros exists, else checked structurally.

Both paths hold the launch file to the same contract as the tests' process start
(launch_args.detector_ros_args): same package, executable, node name, params file and
remapping, so what CI runs is what `ros2 launch` starts on a robot.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from edge_trt_ros.ros.launch_args import (
    DEFAULT_BACKEND,
    DEFAULT_CAMERA,
    DEFAULT_CAMERAS,
    EXECUTABLE,
    NODE_NAME,
    PACKAGE,
    PARAMS_FILE,
    detector_ros_args,
)
from edge_trt_ros.ros.parameters import SPECS

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "detector.launch.py"


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        n for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", "")) == name
    ]


def _kw(call: ast.Call, key: str) -> ast.expr:
    return next(k.value for k in call.keywords if k.arg == key)


def test_launch_file_starts_the_installed_executable_with_the_shared_contract() -> None:
    tree = ast.parse(LAUNCH.read_text())
    assert _calls(tree, "OpaqueFunction"), "the Node is made when the arguments are known"
    [node] = _calls(tree, "Node")
    assert ast.literal_eval(_kw(node, "package")) == PACKAGE
    assert ast.literal_eval(_kw(node, "executable")) == EXECUTABLE
    assert ast.literal_eval(_kw(node, "name")) == NODE_NAME
    args = {
        ast.literal_eval(c.args[0]): ast.literal_eval(_kw(c, "default_value"))
        for c in _calls(tree, "DeclareLaunchArgument")
        if any(k.arg == "default_value" for k in c.keywords)
        and isinstance(_kw(c, "default_value"), ast.Constant)
    }
    assert args == {"camera": DEFAULT_CAMERA, "cameras": DEFAULT_CAMERAS,
                    "backend": DEFAULT_BACKEND}
    assert {ast.literal_eval(c.args[0]) for c in _calls(tree, "DeclareLaunchArgument")} == {
        "camera", "cameras", "backend", "params_file"}
    # the params file default is <share>/config/detector.yaml, i.e. PARAMS_FILE
    join = next(c for c in _calls(tree, "join") if len(c.args) == 3)
    assert "/".join(ast.literal_eval(a) for a in join.args[1:]) == PARAMS_FILE


def test_everything_the_launch_file_names_exists_and_is_installed() -> None:
    assert (ROOT / "bin" / EXECUTABLE).is_file()
    assert (ROOT / PARAMS_FILE).is_file()
    assert re.search(rf"<name>{PACKAGE}</name>", (ROOT / "package.xml").read_text())
    cmake = (ROOT / "CMakeLists.txt").read_text()
    assert re.search(rf"install\(PROGRAMS[^)]*bin/{EXECUTABLE}\b", cmake)
    assert re.search(r"install\(DIRECTORY launch config models", cmake)


def test_params_file_sets_only_declared_parameters_with_valid_values() -> None:
    doc = yaml.safe_load((ROOT / PARAMS_FILE).read_text())
    params = doc["/**"]["ros__parameters"]

    def flatten(d: dict, prefix: str = "") -> dict:
        out = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out.update(flatten(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
        return out

    flat = flatten(params)
    assert set(flat) == set(SPECS), "params file and declared parameters differ"
    for name, value in flat.items():
        spec = SPECS[name]
        assert type(value) is type(spec.default), name
        if spec.choices:
            assert value in spec.choices, name
        if spec.bounds:
            assert spec.bounds[0] <= value <= spec.bounds[1], name


def test_plain_process_start_uses_the_same_remapping_and_params() -> None:
    args = detector_ros_args("/p.yaml", "/front/image_raw", "onnxruntime", {"x": "1"})
    assert args[0] == "--ros-args"
    assert args[args.index("--params-file"):][:2] == ["--params-file", "/p.yaml"]
    assert args[-2:] == ["-r", "image:=/front/image_raw"]
    assert f"__node:={NODE_NAME}" in args and "backend:=onnxruntime" in args
    # no backend argument: the params file decides (as ros2 launch without backend:=)
    assert not any(a.startswith("backend:=") for a in detector_ros_args("/p.yaml"))
    several = detector_ros_args("/p.yaml", cameras=["/front/image_raw", "/rear/image_raw"])
    assert several[-2:] == ["-p", "image_topics:=[/front/image_raw,/rear/image_raw]"]
    assert not any(a.startswith("image:=") for a in several)


@pytest.mark.skipif(importlib.util.find_spec("launch_ros") is None,
                    reason="launch_ros not installed (no ROS apt install here)")
def test_launch_description_loads_with_launch_ros() -> None:
    from launch.actions import DeclareLaunchArgument
    from launch_ros.actions import Node

    spec = importlib.util.spec_from_file_location("detector_launch", LAUNCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from launch.actions import OpaqueFunction

    from launch import LaunchContext

    entities = module.generate_launch_description().entities
    declared = {e.name for e in entities if isinstance(e, DeclareLaunchArgument)}
    assert declared == {"camera", "cameras", "params_file", "backend"}
    [make] = [e for e in entities if isinstance(e, OpaqueFunction)]
    for backend, cameras in (("", ""), ("tensorrt", "/a/image,/b/image")):
        context = LaunchContext()
        context.launch_configurations.update(
            {"camera": "/c", "cameras": cameras, "params_file": "/p.yaml", "backend": backend})
        [node] = make.execute(context)
        assert isinstance(node, Node)


def test_every_declared_parameter_is_documented() -> None:
    doc = (ROOT / "docs" / "ros_interface.md").read_text()
    missing = [name for name in SPECS if f"| `{name}` |" not in doc]
    assert not missing, f"docs/ros_interface.md lacks {missing}"
