"""trtdbg's engine: model index, backends, data I/O, comparison, precision and surgery.

Pure Python over numpy / onnx / onnxruntime; never imports Textual (tests/test_import_hygiene.py).
"""

__version__ = "0.1.0"
