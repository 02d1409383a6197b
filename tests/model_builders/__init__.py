"""Tiny ONNX graphs, built with onnx.helper, that honour the tensor contracts of the real models."""
