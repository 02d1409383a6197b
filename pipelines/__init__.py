"""Swap & Spot processing pipelines: face analysis, swapping, video, detection, provenance.

Importable without gradio; every stage works on numpy arrays (RGB uint8 images unless stated).
"""
