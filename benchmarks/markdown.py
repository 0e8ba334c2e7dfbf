"""Small Markdown builders for the benchmark reports, so long table rows stay short in code."""

from __future__ import annotations


def row(*cells: object) -> str:
    """One table row: ``| a | b | c |``."""
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def table(header: list[str], rows: list[list[object]]) -> str:
    """A header, its separator line and the rows."""
    return "\n".join([row(*header), row(*["---"] * len(header)), *(row(*r) for r in rows)])
