"""edge_trt_ros: an energy-aware defect detector for edge robots.

The ROS-free core (vision, engines, detector, dataset, evaluation, power) imports without
rclpy; the ROS layer lives in :mod:`edge_trt_ros.ros`.
"""

from pkgutil import extend_path

# The generated msg/srv modules live in the colcon install, not in a source checkout: let a
# checkout that shadows the install (run from the repository root) still find them.
__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"
