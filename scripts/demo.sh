#!/usr/bin/env bash
# The main job on a machine without ROS or a GPU: bootstrap (idempotent), then the
# synthetic AGV camera -> detector pipeline with live detections and efficiency figures.
# Extra arguments go to the demo, e.g. scripts/demo.sh --seconds 60 --rate 15
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/bootstrap.sh"
set +u  # colcon's setup.bash reads unset variables
# shellcheck disable=SC1091
. "$ROOT/scripts/env.sh"
set -u
exec python -m edge_trt_ros.ros.demo "$@"
