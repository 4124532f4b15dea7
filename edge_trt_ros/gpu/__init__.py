"""CUDA plumbing for the GPU path: streams, buffers, copies and the preprocessing kernel.

Built on cuda-python only (no PyCUDA or CuPy on a Jetson). Importing this package never
needs cuda-python: :mod:`.runtime` loads it on first use, so the CPU-only install and CI
import everything here and skip the GPU work. Modules: :mod:`.runtime` (errors, streams,
device/pinned buffers, copies, device identity), :mod:`.letterbox` (letterbox + normalise
+ HWC->CHW in one NVRTC-compiled kernel, bit-compatible with the CPU path).
"""
