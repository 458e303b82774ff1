"""Running exported models (ONNX Runtime)."""
