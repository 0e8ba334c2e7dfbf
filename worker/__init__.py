"""Celery worker that runs LURE updates for sealed mega-batches (built in the server issue)."""
