"""Shared fixtures: tiny real data and models, so tests train for real in seconds on a CPU."""

from __future__ import annotations

import json
import os
import resource
from collections.abc import Iterator

import pytest
import torch

from lure_engine.data import load_digits_dataset, to_tensor
from lure_engine.models import ModelSpec, build_model


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests (real processes, a browser) first: pytest-xdist's idle processes then fill
    the end of the run with quick ones, instead of the run ending on one long test while the
    other processes wait."""
    items.sort(key=lambda item: not _starts_processes(item))


def _starts_processes(item: pytest.Item) -> bool:
    """Marked slow, or in a folder whose tests start servers, workers or a browser."""
    folder = item.nodeid.split("::")[0].split("/")[1:2]
    return item.get_closest_marker("slow") is not None or folder in (["integration"], ["browser"])


def pytest_configure(config: pytest.Config) -> None:
    """One torch thread per test process, and per process a test starts (servers, workers, the
    CLI, the examples) unless it asks for more: pytest-xdist runs several on the same cores, and
    torch's default of one thread per core makes them spin against each other. Measured on the
    bring-your-own-model test beside three busy cores: 156 CPU-seconds with the default, 73 with
    one thread (238 s and 147 s of wall time)."""
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """``LURE_TEST_CPU_REPORT=FILE``: one JSON line per test with the CPU seconds it used, its
    own and its reaped processes' (servers, workers): the suite's wall time on two cores is
    bounded by its CPU time, so CPU, not duration, says which test to make cheaper."""
    report = os.environ.get("LURE_TEST_CPU_REPORT")
    before = _cpu_seconds()
    yield
    if report:
        line = {"test": item.nodeid, "cpu_seconds": round(_cpu_seconds() - before, 2)}
        with open(report, "a") as file:  # one short append per line: processes may share it
            file.write(json.dumps(line) + "\n")


def _cpu_seconds() -> float:
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.fixture(scope="session")
def digits():
    return load_digits_dataset()


@pytest.fixture()
def digits_tensors(digits):
    return to_tensor(digits.train.x), torch.from_numpy(digits.train.y)


@pytest.fixture()
def cnn_spec() -> ModelSpec:
    return ModelSpec("small_cnn", num_classes=10, channels=1, image_size=8, width=0.25)


@pytest.fixture()
def cnn(cnn_spec):
    return build_model(cnn_spec, seed=0)


@pytest.fixture()
def resnet_spec() -> ModelSpec:
    return ModelSpec("resnet18", num_classes=10, channels=3, image_size=16, width=0.125)
