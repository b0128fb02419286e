"""Latency of any ONNX CNN on a calibrated device, predicted without running it: the graph is split
into the kernels the runtime executes (ops.py reads them, fusion.py groups them by the fusion rules
timed on the device), each kernel is predicted by a regressor of its type learned from sampled
kernels timed alone (sampling.py, calibration.py, model.py), and the network is their sum."""
