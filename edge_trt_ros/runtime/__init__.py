"""The detector at run time, without ROS: frame statistics, the worker and the switcher.

The ROS node only wires these to topics, parameters and services, so the same behaviour
(latest-frame policy, engine switches between frames, counters) is testable and usable
without rclpy.
"""
