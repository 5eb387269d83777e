"""Molecular data sets and embedders (the optional ``molecules`` extra: RDKit, datamol, ONNX Runtime)."""
