"""Replay memories over sample references (integer ids), so a buffer can be stored with a version.

``observe`` is called with a mega-batch's train samples after it has been learned; ``ids`` returns
what the next update replays. Every random choice is drawn from (seed, samples seen so far), so a
memory rebuilt from its state continues exactly as the original would.
"""

from __future__ import annotations

from collections import Counter

import numpy as np


class _Forgets:
    """Samples that can no longer be read (their stored chunk was lost) leave the memory."""

    _ids: list[int]
    _labels: list[int]

    def forget(self, ids: np.ndarray) -> None:
        gone = {int(i) for i in ids}
        kept = [(i, c) for i, c in zip(self._ids, self._labels, strict=True) if i not in gone]
        self._ids, self._labels = [i for i, _ in kept], [c for _, c in kept]


class FullReplay(_Forgets):
    """Every earlier train sample: the paper's full replay; grows with the stream."""

    name = "full"

    def __init__(self) -> None:
        self._ids: list[int] = []
        self._labels: list[int] = []

    def observe(self, ids: np.ndarray, labels: np.ndarray) -> None:
        self._ids.extend(int(i) for i in ids)
        self._labels.extend(int(c) for c in labels)

    def ids(self) -> np.ndarray:
        return np.asarray(self._ids, dtype=np.int64)

    def state_dict(self) -> dict:
        return {"kind": self.name, "ids": list(self._ids), "labels": list(self._labels)}

    def load_state_dict(self, state: dict) -> None:
        self._ids, self._labels = list(state["ids"]), list(state["labels"])


class NoReplay(FullReplay):
    """Train on the new mega-batch alone."""

    name = "none"

    def observe(self, ids: np.ndarray, labels: np.ndarray) -> None:
        return None


class ReservoirBuffer(_Forgets):
    """At most ``capacity`` samples, each seen sample equally likely to be held (Vitter's algorithm
    R).
    """

    name = "reservoir"

    def __init__(self, capacity: int, seed: int = 0) -> None:
        if capacity < 1:
            raise ValueError(f"buffer size must be at least 1, got {capacity}")
        self.capacity, self.seed, self.seen = capacity, seed, 0
        self._ids: list[int] = []
        self._labels: list[int] = []

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.seen])

    def observe(self, ids: np.ndarray, labels: np.ndarray) -> None:
        rng = self._rng()
        for sample_id, label in zip(ids, labels, strict=True):
            if len(self._ids) < self.capacity:
                self._ids.append(int(sample_id))
                self._labels.append(int(label))
            else:
                slot = int(rng.integers(0, self.seen + 1))
                if slot < self.capacity:
                    self._ids[slot], self._labels[slot] = int(sample_id), int(label)
            self.seen += 1

    def ids(self) -> np.ndarray:
        return np.asarray(self._ids, dtype=np.int64)

    def labels(self) -> np.ndarray:
        return np.asarray(self._labels, dtype=np.int64)

    def state_dict(self) -> dict:
        return {
            "kind": self.name,
            "capacity": self.capacity,
            "seed": self.seed,
            "seen": self.seen,
            "ids": list(self._ids),
            "labels": list(self._labels),
        }

    def load_state_dict(self, state: dict) -> None:
        self.capacity, self.seed, self.seen = state["capacity"], state["seed"], state["seen"]
        self._ids, self._labels = list(state["ids"]), list(state["labels"])


class ClassBalancedBuffer(ReservoirBuffer):
    """At most ``capacity`` samples spread as evenly as possible over the classes seen.

    When full, a sample of an under-represented class evicts a random sample of the largest class;
    a sample of a largest class replaces one of its own class with reservoir probability, so each
    class's share is a uniform sample of that class's stream (class-balanced reservoir sampling).
    """

    name = "class_balanced"

    def __init__(self, capacity: int, seed: int = 0) -> None:
        super().__init__(capacity, seed)
        self.seen_per_class: Counter[int] = Counter()

    def observe(self, ids: np.ndarray, labels: np.ndarray) -> None:
        rng = self._rng()
        for sample_id, label in zip(ids, labels, strict=True):
            sample_id, label = int(sample_id), int(label)
            self.seen += 1
            self.seen_per_class[label] += 1
            if len(self._ids) < self.capacity:
                self._ids.append(sample_id)
                self._labels.append(label)
                continue
            counts = Counter(self._labels)
            largest = max(counts.values())
            if counts[label] < largest:
                victim_class = min(c for c, n in counts.items() if n == largest)
                slots = [i for i, c in enumerate(self._labels) if c == victim_class]
                slot = slots[int(rng.integers(0, len(slots)))]
            else:
                if rng.random() >= counts[label] / self.seen_per_class[label]:
                    continue
                slots = [i for i, c in enumerate(self._labels) if c == label]
                slot = slots[int(rng.integers(0, len(slots)))]
            self._ids[slot], self._labels[slot] = sample_id, label

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["seen_per_class"] = {str(k): v for k, v in self.seen_per_class.items()}
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.seen_per_class = Counter({int(k): v for k, v in state["seen_per_class"].items()})
