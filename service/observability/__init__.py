"""Prometheus metrics for the API, the queue and the updates."""
