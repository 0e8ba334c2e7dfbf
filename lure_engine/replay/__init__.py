"""Replay modes: ``full``, ``none`` and ``buffer:K[:reservoir|class_balanced]``."""

from __future__ import annotations

from lure_engine.replay.buffers import ClassBalancedBuffer, FullReplay, NoReplay, ReservoirBuffer

Replay = FullReplay | NoReplay | ReservoirBuffer | ClassBalancedBuffer
BUFFER_POLICIES = {"reservoir": ReservoirBuffer, "class_balanced": ClassBalancedBuffer}

__all__ = [
    "BUFFER_POLICIES",
    "ClassBalancedBuffer",
    "FullReplay",
    "NoReplay",
    "Replay",
    "ReservoirBuffer",
    "make_replay",
    "parse_replay",
]


def parse_replay(text: str) -> tuple[str, int | None, str | None]:
    """``"buffer:500:reservoir"`` → ("buffer", 500, "reservoir"); the policy defaults to
    class_balanced.
    """
    parts = text.strip().split(":")
    if parts[0] in ("full", "none") and len(parts) == 1:
        return parts[0], None, None
    if parts[0] == "buffer" and len(parts) in (2, 3):
        try:
            size = int(parts[1])
        except ValueError:
            raise ValueError(f"replay buffer size must be an integer, got {parts[1]!r}") from None
        if size < 1:
            raise ValueError(f"replay buffer size must be at least 1, got {size}")
        policy = parts[2] if len(parts) == 3 else "class_balanced"
        if policy not in BUFFER_POLICIES:
            raise ValueError(
                f"unknown buffer policy {policy!r}; choose {', '.join(BUFFER_POLICIES)}"
            )
        return "buffer", size, policy
    raise ValueError(
        f"replay must be full, none or buffer:K[:reservoir|class_balanced], got {text!r}"
    )


def make_replay(text: str, seed: int = 0) -> Replay:
    mode, size, policy = parse_replay(text)
    if mode == "full":
        return FullReplay()
    if mode == "none":
        return NoReplay()
    assert size is not None and policy is not None  # parse_replay gives both for a buffer
    return BUFFER_POLICIES[policy](size, seed)
