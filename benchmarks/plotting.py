"""Headless matplotlib for the benchmark plots: the backend and the save settings in one place."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the Agg backend, so plots render on a machine without a display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(figure: Any, path: Path) -> None:
    """Write ``figure`` as a 120-dpi PNG and free it (a benchmark draws many in one process)."""
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot().close(figure)
