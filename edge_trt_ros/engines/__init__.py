"""Inference backends behind one small interface (see :mod:`edge_trt_ros.engines.base`)."""
