"""The LURE server's light client: the Python client (``LureClient``) and the CLI's remote
commands, with no torch, so a team pushing data or reading versions installs only
``pip install ./client`` (httpx, numpy, Pillow, typer, rich)."""

from lure_client.client import LureClient, LureError, PushRefused

__all__ = ["LureClient", "LureError", "PushRefused"]
