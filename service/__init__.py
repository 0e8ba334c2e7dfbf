"""The LURE update server: HTTP API, storage and dashboard (see DESIGN.md), plus the ``lure`` CLI."""
