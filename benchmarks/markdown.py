"""Small Markdown builders for the benchmark reports, so long table rows stay short in code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def mean_std(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    """``mean ± std`` of the values times ``scale`` (population std over seeds); "–" for none."""
    if len(values) == 0:
        return "–"
    array = np.asarray(values, dtype=float) * scale
    return f"{array.mean():.{digits}f} ± {array.std():.{digits}f}"


def row(*cells: object) -> str:
    """One table row: ``| a | b | c |``."""
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def table(header: list[str], rows: list[list[object]]) -> str:
    """A header, its separator line and the rows."""
    return "\n".join([row(*header), row(*["---"] * len(header)), *(row(*r) for r in rows)])


def publish(folder: Path, name: str, result: dict, markdown: str) -> None:
    """A benchmark's figures as ``folder/name.json`` and its report as ``name.md``, printed."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(result, indent=2))
    (folder / f"{name}.md").write_text(markdown)
    print(markdown)
