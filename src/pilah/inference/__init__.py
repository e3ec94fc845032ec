"""Inference: load a model once, check it gives its own answers on this processor, classify anything; export.

Needs no TensorFlow for ONNX models (the default install); `.keras` and TFLite files and Grad-CAM need
`pip install 'pilah[train]'`.
"""
