"""Stage 2: the complexity of any ONNX graph (MACs, parameters, bytes), split as fvcore splits it."""
