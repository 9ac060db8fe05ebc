"""TensorRT backend for all three flavours: TensorRT 10.x, 11.x (``import tensorrt``) and TensorRT-RTX.

Modules: :mod:`flavour` (import + feature detection), :mod:`build` (parse, mark, build, engine cache),
:mod:`mapping` (TensorRT layers and tensors ↔ ONNX nodes and tensors), :mod:`inspector` (engine
information in both JSON schemas and the build log), :mod:`devmem` (device memory through pycuda or
cuda-python), :mod:`runner` (:class:`TrtRunner`), :mod:`legacy` (TensorRT 10 weak typing).

Nothing here imports TensorRT at import time; every feature is detected with ``hasattr`` on the
imported module, never by comparing version strings, and enum members are stored by name.
"""
