"""The real services ``scripts/services.sh`` starts, by the variable naming each: missing ones
fail in CI (``LURE_REQUIRE_SERVICES``) and skip elsewhere."""

from __future__ import annotations

import os

import pytest


def service_url(name: str) -> str:
    url = os.environ.get(name)
    if not url:
        message = f"{name} is not set: run `source scripts/services.sh` (scripts/test.sh does)"
        if os.environ.get("LURE_REQUIRE_SERVICES"):
            pytest.fail(message)
        pytest.skip(message)
    return url
