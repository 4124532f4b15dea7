"""The thin ROS 2 layer: wiring, message conversion, parameters and services."""
