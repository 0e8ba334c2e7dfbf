from collections import Counter

import numpy as np
import pytest
from scipy.stats import chisquare

from lure_engine.replay import ClassBalancedBuffer, ReservoirBuffer, make_replay, parse_replay


def _stream(n_chunks=40, chunk=100, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    next_id = 0
    for _ in range(n_chunks):
        ids = np.arange(next_id, next_id + chunk)
        next_id += chunk
        yield ids, rng.integers(0, classes, chunk)


@pytest.mark.parametrize("policy", [ReservoirBuffer, ClassBalancedBuffer])
def test_buffer_never_exceeds_capacity(policy):
    buffer = policy(capacity=150, seed=0)
    for ids, labels in _stream():
        buffer.observe(ids, labels)
        assert len(buffer.ids()) <= 150
    assert len(buffer.ids()) == 150
    assert len(set(buffer.ids().tolist())) == 150


def test_class_balanced_buffer_keeps_every_class_near_equal_share():
    rng = np.random.default_rng(1)
    buffer = ClassBalancedBuffer(capacity=100, seed=0)
    # a skewed stream: class 0 is 10x more frequent than the other four
    for chunk in range(30):
        labels = rng.choice(5, 200, p=[10 / 14, 1 / 14, 1 / 14, 1 / 14, 1 / 14])
        buffer.observe(np.arange(chunk * 200, (chunk + 1) * 200), labels)
    counts = Counter(buffer.labels().tolist())
    assert set(counts) == {0, 1, 2, 3, 4}
    assert max(counts.values()) - min(counts.values()) <= 1


def test_reservoir_is_uniform_over_arrival_time():
    capacity, n_chunks, chunk = 500, 50, 200
    buffer = ReservoirBuffer(capacity, seed=42)
    for ids, labels in _stream(n_chunks, chunk):
        buffer.observe(ids, labels)
    arrival_chunk = buffer.ids() // chunk  # which chunk each held sample came from
    observed = np.bincount(arrival_chunk, minlength=n_chunks)
    _, p_value = chisquare(observed)  # expected: capacity / n_chunks in every chunk
    assert p_value > 0.01, observed


def test_reservoir_would_fail_the_uniformity_test_if_it_kept_only_recent_samples():
    # guards the test above against passing vacuously
    observed = np.bincount(np.arange(9500, 10000) // 200, minlength=50)
    assert chisquare(observed).pvalue < 1e-6


@pytest.mark.parametrize("text", ["buffer:64:reservoir", "buffer:64", "full"])
def test_state_round_trip_continues_identically(text):
    original, restored = make_replay(text, seed=3), make_replay(text, seed=99)
    chunks = list(_stream(12, 50))
    for ids, labels in chunks[:6]:
        original.observe(ids, labels)
    restored.load_state_dict(original.state_dict())
    for ids, labels in chunks[6:]:
        original.observe(ids, labels)
        restored.observe(ids, labels)
    assert np.array_equal(original.ids(), restored.ids())


def test_no_replay_holds_nothing():
    replay = make_replay("none")
    for ids, labels in _stream(3):
        replay.observe(ids, labels)
    assert len(replay.ids()) == 0


@pytest.mark.parametrize("bad", ["buffer", "buffer:x", "buffer:0", "buffer:5:fifo", "sometimes"])
def test_bad_replay_specs_are_refused(bad):
    with pytest.raises(ValueError):
        parse_replay(bad)
