"""ONNX export of the ECG-only model with a parity check, and the onnxruntime runner (`onnx`)."""
