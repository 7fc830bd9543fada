"""Backends: one emitter per framework, each turning a `ModulePlan` into source.

Only TensorFlow exists today; a JAX or PyTorch backend is one more module here
that reads the same plan (see docs/design.md).
"""
