"""Which evidence should move ``auto``'s live pointer? Replays candidate rules on recorded runs.

    python -m benchmarks.lineage_choice --runs-dir docs/benchmarks/promotion_gate_runs

With challenger lineages each strategy trains exactly what it would alone, whichever lineage is
live, so one ``auto`` run of ``benchmarks.promotion_gate`` records everything a choice rule needs:
each mega-batch's two candidates, their discordant gate rows (``pairs``: the models that would go
live, on every gate row but their own mega-batch's), their heads' discordant rows on the new
mega-batch before training (``prequential_pairs``), and each candidate's test accuracy. A rule is
replayed on that record with the server's own test (``lure_engine.lineage_evidence``); the live
lineage's final test accuracy is set beside the better lineage's. Exact as long as no lineage was
retired and every candidate extended its lineage; otherwise the replay stops at the last
mega-batch on which both trained, and says which.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from benchmarks.markdown import row
from lure_engine.lineage_evidence import Discordance
from lure_update.selection import choose_lineage


@dataclass(frozen=True)
class Step:
    """One mega-batch of a two-lineage run, from ``first``'s side."""

    megabatch: int
    gate: Discordance  # the two candidates on the gate rows
    prequential: Discordance | None  # the two heads on the new mega-batch's rows
    accuracy: dict[str, float]  # each candidate's test accuracy


def steps(doc: dict) -> tuple[list[str], list[Step]]:
    """The run's lineages (primary first) and the mega-batches on which both trained."""
    by_megabatch: dict[int, dict[str, dict]] = {}
    for version in doc["versions"]:
        by_megabatch.setdefault(version["megabatch"], {})[version["strategy"]] = version
    names = list(by_megabatch[1])
    first, second = names
    out = []
    for megabatch in sorted(by_megabatch):
        pair = by_megabatch[megabatch]
        if len(pair) < 2:  # one was retired
            continue
        record = pair[first]["lineage"] or {}
        prequential = (record.get("prequential_pairs") or {}).get(second)
        out.append(
            Step(
                megabatch,
                Discordance.from_dict(record["pairs"][second]),
                Discordance.from_dict(prequential) if prequential else None,
                {s: pair[s]["test_accuracy"] for s in names},
            )
        )
    return names, out


def evidence(rule: str, history: list[Step], window: int) -> Discordance:
    """``first``'s discordant rows against ``second`` under ``rule``."""
    latest = history[-1]
    prequential = [s.prequential for s in history if s.prequential is not None]
    if rule == "pooled prequential":
        return sum(prequential, Discordance())
    if rule == "recent prequential":
        return sum(prequential[-window:], Discordance())
    if rule == "candidates' gate rows":
        return latest.gate
    if rule == "candidates' gate rows + newest prequential":
        newest = latest.prequential or Discordance()
        return latest.gate + newest
    raise ValueError(rule)


def replay(names: list[str], history: list[Step], rule: str, significance: float, window: int):
    """The live lineage after each mega-batch, and how many times it switched."""
    first, second = names
    live: str | None = None
    switches = 0
    for index in range(len(history)):
        seen = history[: index + 1]
        if live is None:  # the first mega-batch: the primary (a tie goes to it)
            live = first
            continue
        mine = evidence(rule, seen, window)
        other = second if live == first else first
        against = mine.swapped() if live == first else mine
        choice = choose_lineage(live, {other: against}, significance, fallback=live)
        switches += choice.switched
        live = choice.leader
    return live, switches


RULES = [
    ("pooled prequential", 0.05, 0),
    ("recent prequential", 0.05, 2),
    ("recent prequential", 0.2, 2),
    ("recent prequential", 0.2, 1),
    ("candidates' gate rows", 0.05, 0),
    ("candidates' gate rows", 0.2, 0),
    ("candidates' gate rows + newest prequential", 0.05, 0),
    ("candidates' gate rows + newest prequential", 0.2, 0),
    ("candidates' gate rows + newest prequential", 0.25, 0),
]


def report(runs_dir: Path) -> str:
    runs = [json.loads(p.read_text()) for p in sorted(runs_dir.glob("auto-seed*.json"))]
    header = "| rule | significance | " + " | ".join(
        f"seed {d['seed']}: live − better (points), at mega-batch, switches" for d in runs
    )
    lines = [header + " | mean shortfall |", "|---" * (len(runs) + 3) + "|"]
    for rule, significance, window in RULES:
        cells, gaps = [], []
        for doc in runs:
            names, history = steps(doc)
            live, switches = replay(names, history, rule, significance, window)
            final = history[-1].accuracy
            gap = (final[live] - max(final.values())) * 100
            gaps.append(gap)
            cells.append(f"{gap:+.2f} ({live}), {history[-1].megabatch}, {switches}")
        label = rule + (f", last {window}" if window else "")
        lines.append(row(label, significance, *cells, f"{sum(gaps) / len(gaps):+.2f}"))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--runs-dir", type=Path, default=Path("docs/benchmarks/promotion_gate_runs")
    )
    print(report(parser.parse_args().runs_dir))


if __name__ == "__main__":
    main()
