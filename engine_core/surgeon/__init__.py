"""Graph surgery on ONNX models: extract, sanitize (fold constants), insert, prune, export, and reduce.

Every edit is a pure function that takes a ``ModelProto`` and returns an
:class:`~engine_core.surgeon.changes.EditResult` (a new model plus a change summary); the input
model is never modified. Writing goes through :mod:`engine_core.model.save` (atomic, never over
the input files).
"""
