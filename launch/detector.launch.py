"""ros2 launch edge_trt_ros detector.launch.py camera:=/front_camera/image_raw"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription


def _detector(context):  # type: ignore[no-untyped-def]
    # backend:= overrides the params file only when given: an empty default must not
    # silently replace what the params file says.
    backend = LaunchConfiguration("backend").perform(context)
    overrides = [{"backend": backend}] if backend else []
    return [Node(
        package="edge_trt_ros",
        executable="detector_node",
        name="detector",
        output="screen",
        parameters=[LaunchConfiguration("params_file"), *overrides],
        remappings=[("image", LaunchConfiguration("camera"))],
    )]


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("edge_trt_ros")
    return LaunchDescription([
        DeclareLaunchArgument("camera", default_value="/camera/image_raw",
                              description="sensor_msgs/Image topic to run the detector on"),
        DeclareLaunchArgument("params_file",
                              default_value=os.path.join(share, "config", "detector.yaml"),
                              description="detector parameters (YAML)"),
        DeclareLaunchArgument("backend", default_value="",
                              description="auto | onnxruntime | tensorrt; empty = the params "
                              "file's"),
        OpaqueFunction(function=_detector),
    ])
