#!/usr/bin/env bash
# Every check CI runs: bootstrap (idempotent), lint, type check, tests.
# Extra arguments go to pytest, e.g. scripts/test.sh -k detector -x
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/bootstrap.sh"
set +u  # colcon's setup.bash reads unset variables
# shellcheck disable=SC1091
. "$ROOT/scripts/env.sh"
set -u
cd "$ROOT"
echo "[test] ruff"; ruff check .
echo "[test] mypy"
[ -f .ros_ws/mypy_stubs/tensorrt_bindings/tensorrt.pyi ] \
  || { echo "[test] error: TensorRT stubs missing; scripts/bootstrap.sh makes them" >&2; exit 1; }
mypy edge_trt_ros
echo "[test] pytest"; exec python -m pytest "$@"
