"""LURE engine: a plain PyTorch library for Learn, Unlearn, Relearn model updates.

It knows nothing of HTTP, queues or databases, so it can be used from a notebook, the
benchmarks, or the update worker alike.
"""

__version__ = "0.1.0"
