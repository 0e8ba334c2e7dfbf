"""The LURE update server's HTTP side: the API, the dashboard, the ``lure`` CLI and the Python
client (docs/ARCHITECTURE.md).
"""
