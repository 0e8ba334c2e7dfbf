"""/predict serves through the fastest engine whose outputs match eager PyTorch's."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from lure_engine.models import ModelSpec, build_model
from service.engines import EagerEngine, FastestBySize, OnnxRuntimeEngine, choose_engine

CPU = torch.device("cpu")


@pytest.fixture()
def resnet():
    return build_model(ModelSpec("resnet18", 10, 3, 32, 0.25), seed=0).eval()


def _batch(n: int = 8) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(1).normal(size=(n, 3, 32, 32)).astype("float32"))


def test_onnx_runtime_reproduces_eager_probabilities(resnet):
    batch = _batch()
    eager = EagerEngine(resnet, CPU).probabilities(batch)
    onnx = OnnxRuntimeEngine(resnet, batch[:1]).probabilities(batch)
    assert onnx.shape == eager.shape == (8, 10)
    assert np.abs(onnx - eager).max() < 1e-5
    assert np.allclose(onnx.sum(1), 1, atol=1e-6)


def test_the_engine_asked_for_is_the_engine_used(resnet):
    assert choose_engine(resnet, _batch(), CPU, "eager").name == "eager"
    assert choose_engine(resnet, _batch(), CPU, "onnxruntime").name == "onnxruntime"
    auto = choose_engine(resnet, _batch(), CPU, "auto")
    assert set(auto.name.replace("@1", "").replace("@8", "").replace("@32", "").split("+")) <= {
        "eager",
        "onnxruntime",
    }
    assert (
        np.abs(
            auto.probabilities(_batch(20)) - EagerEngine(resnet, CPU).probabilities(_batch(20))
        ).max()
        < 1e-4
    )


def test_each_batch_size_goes_to_the_engine_fastest_near_it():
    class Named:
        def __init__(self, name):
            self.name, self.sizes = name, []

        def probabilities(self, batch):
            self.sizes.append(len(batch))
            return np.zeros((len(batch), 2))

    small, large = Named("small"), Named("large")
    engine = FastestBySize({1: small, 8: small, 32: large})
    for size in (1, 3, 8, 12, 21, 32, 64):
        engine.probabilities(torch.zeros(size, 1))
    assert small.sizes == [1, 3, 8, 12] and large.sizes == [21, 32, 64]
    assert engine.name == "small@1+small@8+large@32"


def test_a_model_onnx_cannot_export_is_served_eagerly_with_a_warning(caplog):
    class NoExport(torch.nn.Module):
        def forward(self, x):
            return torch.from_numpy(x.numpy()[:, :10, 0, 0].copy())  # leaves the graph

    with caplog.at_level(logging.WARNING, logger="lure.inference"):
        engine = choose_engine(NoExport(), _batch(), CPU, "auto")
    assert engine.name == "eager"
    assert "cannot serve this model" in caplog.text or "differ from PyTorch's" in caplog.text


def test_outputs_that_disagree_fall_back_to_eager(resnet, monkeypatch, caplog):
    monkeypatch.setattr(
        OnnxRuntimeEngine, "probabilities", lambda self, batch: np.full((len(batch), 10), 0.1)
    )
    with caplog.at_level(logging.WARNING, logger="lure.inference"):
        engine = choose_engine(resnet, _batch(), CPU, "onnxruntime")
    assert engine.name == "eager"
    assert "differ from PyTorch's" in caplog.text
