# Source this to use the bootstrapped environment: ROS 2 wheels venv + the colcon install.
# shellcheck shell=bash
_etr_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ ! -f "$_etr_root/.ros_ws/install/setup.bash" ] || [ ! -f "$_etr_root/.ros_ws/venv_path" ]; then
  echo "edge_trt_ros: not bootstrapped yet, run: scripts/bootstrap.sh" >&2
  return 1 2>/dev/null || exit 1
fi
_etr_venv=$(cat "$_etr_root/.ros_ws/venv_path")
export VIRTUAL_ENV="$_etr_venv" PATH="$_etr_venv/bin:$PATH"
_etr_site=$("$_etr_venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
export LD_LIBRARY_PATH="$_etr_venv/lib:$(ls -d "$_etr_site"/ros_*.libs 2>/dev/null | paste -sd:)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
export AMENT_PREFIX_PATH="$_etr_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export RMW_IMPLEMENTATION=${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}
# Best-effort camera frames (~1 MB) lose UDP fragments on loopback; this profile carries
# them through a 32 MB shared-memory segment and keeps all traffic on this host.
export FASTDDS_DEFAULT_PROFILES_FILE=${FASTDDS_DEFAULT_PROFILES_FILE:-$_etr_root/config/dds/fastdds_loopback.xml}
# shellcheck disable=SC1091
COLCON_CURRENT_PREFIX="$_etr_root/.ros_ws/install" . "$_etr_root/.ros_ws/install/setup.bash"
# The checkout's sources win over the install, so an edit needs no rebuild; the generated
# msg/srv modules are still found in the install (edge_trt_ros/__init__.py extends __path__).
export PYTHONPATH="$_etr_root:$PYTHONPATH"
unset _etr_root _etr_venv _etr_site
