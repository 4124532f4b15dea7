"""Precision variants of a detector model (fp32, fp16, int8 Q/DQ) and their manifest.

ROS-free and TensorRT-free: everything here runs with onnx, onnxruntime and
onnxconverter-common. One set of files serves both backends (TensorRT builds the fp16 and
symmetric Q/DQ files strongly typed; ONNX Runtime runs all of them, with its own faster
u8s8 int8 recipe on CPUs).

Modules: :mod:`.augment` (calibration-frame augmentation), :mod:`.calibration` (the
lux-stratified calibration set and the range cache), :mod:`.fp16`, :mod:`.int8` (recipes,
pre-processing, quantization), :mod:`.nodes` (decode tail / first conv / head selection),
:mod:`.manifest`, :mod:`.build`, :mod:`.evaluate`, :mod:`.cli`.
"""
