"""ros2 launch edge_trt_ros detector.launch.py camera:=/front_camera/image_raw"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("edge_trt_ros")
    camera = LaunchConfiguration("camera")
    params_file = LaunchConfiguration("params_file")
    backend = LaunchConfiguration("backend")
    return LaunchDescription([
        DeclareLaunchArgument("camera", default_value="/camera/image_raw",
                              description="sensor_msgs/Image topic to run the detector on"),
        DeclareLaunchArgument("params_file",
                              default_value=os.path.join(share, "config", "detector.yaml"),
                              description="detector parameters (YAML)"),
        DeclareLaunchArgument("backend", default_value="onnxruntime",
                              description="auto | onnxruntime | tensorrt"),
        Node(
            package="edge_trt_ros",
            executable="detector_node",
            name="detector",
            output="screen",
            parameters=[params_file, {"backend": backend}],
            remappings=[("image", camera)],
        ),
    ])
