"""Keeping the server running: the outbox dispatcher, the worker supervisor, the instance lock,
health, disk and memory."""
