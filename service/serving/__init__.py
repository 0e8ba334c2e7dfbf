"""Answering /predict: loaded models, inference engines, micro-batching, the prediction log and
what reads it (shadows, drift)."""
