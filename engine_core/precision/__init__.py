"""Precision at the ONNX level: plans (node -> fp32/fp16/bf16/int8), the demotion rules, the rewrite to real low
precision types, CPU storage-rounding emulation, INT8 via Q/DQ with TensorRT calibration caches, and the bisection
that finds the nodes which must stay in higher precision (see docs/precision.md in the shared docs)."""
