"""Stage three: text to vectors. Model folders (manifest), model specs, ONNX export and inference."""
