"""Backends that run a model: the :class:`Runner` interface and its implementations."""
