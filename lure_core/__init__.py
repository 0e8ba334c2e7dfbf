"""What the API and the worker share: settings, logging, the model recipe, the database records,
the blob store and checkpoint I/O, and the names of the update queue.

It depends on the engine (``lure_engine``) and on no other layer; ``worker`` and ``service`` both
build on it and never on each other (docs/ARCHITECTURE.md).
"""
