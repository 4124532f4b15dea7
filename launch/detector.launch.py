"""ros2 launch edge_trt_ros detector.launch.py camera:=/front_camera/image_raw
ros2 launch edge_trt_ros detector.launch.py cameras:=/front/image_raw,/rear/image_raw

``ros2 launch`` exits non-zero when the detector does (a parameter it cannot use: 2, a failed
autostart: 1), so a supervisor or CI job sees the failure; a stop by Ctrl-C or SIGTERM is 0.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription


def detector_failed(event, context):  # type: ignore[no-untyped-def]
    """The Node's on_exit: an exception raised from a launch event handler makes LaunchService.run
    (and so ``ros2 launch``) return 1; without it a node that died at start still exits 0."""
    if event.returncode != 0:
        raise RuntimeError(f"the detector exited with status {event.returncode} (see its "
                           "[FATAL]/[ERROR] lines above)")


def _detector(context):  # type: ignore[no-untyped-def]
    # backend:= overrides the params file only when given: an empty default must not
    # silently replace what the params file says.
    backend = LaunchConfiguration("backend").perform(context)
    overrides: list[dict] = [{"backend": backend}] if backend else []
    # cameras:= (several topics, one engine) replaces the single remapped `image` input.
    cameras = [t.strip() for t in LaunchConfiguration("cameras").perform(context).split(",")
               if t.strip()]
    if cameras:
        overrides.append({"image_topics": cameras})
    return [Node(
        package="edge_trt_ros",
        executable="detector_node",
        name="detector",
        output="screen",
        parameters=[LaunchConfiguration("params_file"), *overrides],
        remappings=[] if cameras else [("image", LaunchConfiguration("camera"))],
        on_exit=detector_failed,
    )]


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("edge_trt_ros")
    return LaunchDescription([
        DeclareLaunchArgument("camera", default_value="/camera/image_raw",
                              description="sensor_msgs/Image topic to run the detector on"),
        DeclareLaunchArgument("cameras", default_value="",
                              description="comma-separated image topics served by one engine "
                              "(outputs under each camera's namespace); replaces camera:="),
        DeclareLaunchArgument("params_file",
                              default_value=os.path.join(share, "config", "detector.yaml"),
                              description="detector parameters (YAML)"),
        DeclareLaunchArgument("backend", default_value="",
                              description="auto | onnxruntime | tensorrt; empty = the params "
                              "file's"),
        OpaqueFunction(function=_detector),
    ])
