"""/predict serves through the fastest engine whose outputs match eager PyTorch's."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from lure_engine.models import ModelSpec, build_model
from lure_engine.preprocess import CIFAR_DEFAULT, Preprocessing
from service.serving.engines import (
    EagerEngine,
    FastestBySize,
    OnnxRuntimeEngine,
    choose_engine,
    onnx_bytes,
)

CPU = torch.device("cpu")
PRE = CIFAR_DEFAULT


@pytest.fixture()
def resnet():
    return build_model(ModelSpec("resnet18", 10, 3, 32, 0.25), seed=0).eval()


def _batch(n: int = 8) -> np.ndarray:
    """uint8 NHWC images, as /predict decodes them."""
    return np.random.default_rng(1).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def test_onnx_runtime_reproduces_eager_probabilities(resnet):
    batch = _batch()
    eager = EagerEngine(resnet, PRE, CPU).probabilities(batch)
    onnx = OnnxRuntimeEngine(resnet, PRE).probabilities(batch)
    assert onnx.shape == eager.shape == (8, 10)
    assert np.abs(onnx - eager).max() < 1e-5
    assert np.allclose(onnx.sum(1), 1, atol=1e-6)


def test_the_onnx_engine_normalises_inside_its_graph(resnet):
    """The served graph is the exported one: uint8 images in, the model's own mean and std."""
    other = Preprocessing(32, 3, (0.2, 0.3, 0.4), (0.5, 0.6, 0.7))
    batch = _batch()
    onnx = OnnxRuntimeEngine(resnet, other)
    assert onnx.session.get_inputs()[0].type == "tensor(uint8)"
    expected = EagerEngine(resnet, other, CPU).probabilities(batch)
    assert np.abs(onnx.probabilities(batch) - expected).max() < 1e-5
    assert (
        np.abs(onnx.probabilities(batch) - EagerEngine(resnet, PRE, CPU).probabilities(batch)).max()
        > 1e-3
    )


def test_the_engine_asked_for_is_the_engine_used(resnet):
    assert choose_engine(resnet, PRE, _batch(), CPU, "eager").name == "eager"
    assert choose_engine(resnet, PRE, _batch(), CPU, "onnxruntime").name == "onnxruntime"
    auto = choose_engine(resnet, PRE, _batch(), CPU, "auto")
    assert set(auto.name.replace("@1", "").replace("@8", "").replace("@32", "").split("+")) <= {
        "eager",
        "onnxruntime",
    }
    assert (
        np.abs(
            auto.probabilities(_batch(20)) - EagerEngine(resnet, PRE, CPU).probabilities(_batch(20))
        ).max()
        < 1e-4
    )


def test_each_batch_size_goes_to_the_engine_fastest_near_it():
    class Named:
        parallel = 1

        def __init__(self, name):
            self.name, self.sizes = name, []

        def probabilities(self, batch):
            self.sizes.append(len(batch))
            return np.zeros((len(batch), 2))

    small, large = Named("small"), Named("large")
    engine = FastestBySize({1: small, 8: small, 32: large})
    for size in (1, 3, 8, 12, 21, 32, 64):
        engine.probabilities(np.zeros((size, 1)))
    assert small.sizes == [1, 3, 8, 12] and large.sizes == [21, 32, 64]
    assert engine.name == "small@1+small@8+large@32"


def test_a_model_onnx_cannot_export_is_served_eagerly_with_a_warning(caplog):
    class NoExport(torch.nn.Module):
        def forward(self, x):
            return torch.from_numpy(x.numpy()[:, :10, 0, 0].copy())  # leaves the graph

    with caplog.at_level(logging.WARNING, logger="lure.inference"):
        engine = choose_engine(NoExport(), PRE, _batch(), CPU, "auto")
    assert engine.name == "eager"
    assert "cannot serve this model" in caplog.text or "differ from PyTorch's" in caplog.text


def test_outputs_that_disagree_fall_back_to_eager(resnet, monkeypatch, caplog):
    monkeypatch.setattr(
        OnnxRuntimeEngine, "probabilities", lambda self, batch: np.full((len(batch), 10), 0.1)
    )
    with caplog.at_level(logging.WARNING, logger="lure.inference"):
        engine = choose_engine(resnet, PRE, _batch(), CPU, "onnxruntime")
    assert engine.name == "eager"
    assert "differ from PyTorch's" in caplog.text


def test_onnx_passes_side_by_side_give_each_caller_its_own_answer(resnet):
    """Under load the micro-batcher runs two passes at once (one wide, one narrow session)."""
    from concurrent.futures import ThreadPoolExecutor

    engine = OnnxRuntimeEngine(resnet, PRE, threads=2)
    assert engine.parallel == 2
    batches = [_batch(1 + i % 5) + i for i in range(16)]  # distinct images per call
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(engine.probabilities, batches))
    eager = EagerEngine(resnet, PRE, CPU)
    for batch, answer in zip(batches, answers, strict=True):
        assert np.abs(answer - eager.probabilities(batch)).max() < 1e-5


def test_the_api_warms_the_onnx_exporter_before_it_serves(client):
    """Its first export holds the GIL for about a second: done at start-up, not in a request."""
    from service.serving.engines import exporter_is_warm

    assert exporter_is_warm()


def test_exports_started_together_all_succeed():
    # torch's exporter is process-wide: without the lock the second export fails mid-way
    models = [build_model(ModelSpec("small_cnn", 10, 3, 32, 0.25), seed=s) for s in range(4)]
    with ThreadPoolExecutor(4) as pool:
        graphs = list(pool.map(lambda m: onnx_bytes(m, torch.zeros(1, 3, 32, 32)), models))
    assert all(len(graph) > 1000 for graph in graphs) and len(set(graphs)) == 4
