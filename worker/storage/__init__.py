"""Durable state shared by the API and the worker: the relational schema, blobs and checkpoints.

It lives under ``worker`` because the worker must not import ``service`` (engine ← worker ←
service is the direction of knowledge) while both need the same records and files.
"""
