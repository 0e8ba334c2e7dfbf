"""The Celery worker: it claims update jobs, runs each update in a child process it supervises, and
publishes the versions (docs/ARCHITECTURE.md).
"""
