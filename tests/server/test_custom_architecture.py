"""A team's own nn.Module, registered through the ``lure.architectures`` entry point group of an
installed package, is created, updated and exported like any built-in architecture (issue 13)."""

from __future__ import annotations

import importlib
import sys
import textwrap

import numpy as np
import onnxruntime
import pytest

from tests.helpers import NPZ, npz_body, png_images

PACKAGE = '''
"""A tiny team model: conv → ReLU → pool → linear."""
from torch import nn


def build(num_classes, channels, image_size):
    return nn.Sequential(nn.Conv2d(channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))
'''


@pytest.fixture()
def team_package(tmp_path, monkeypatch):
    """An installed distribution ``team-nets`` whose entry point names ``tinynet``."""
    (tmp_path / "team_nets").mkdir()
    (tmp_path / "team_nets" / "__init__.py").write_text(textwrap.dedent(PACKAGE))
    info = tmp_path / "team_nets-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: team-nets\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[lure.architectures]\ntinynet = team_nets:build\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    yield "tinynet"
    sys.modules.pop("team_nets", None)


MODEL = {
    "name": "team",
    "architecture": "tinynet",
    "num_classes": 10,
    "image_size": 8,
    "channels": 1,
    "megabatch_size": 300,
    "epochs": 3,
    "batch_size": 32,
    "lr": 0.05,
    "hflip": False,
}


def test_a_custom_architecture_is_created_updated_and_exported(
    client, digits, team_package, run_jobs
):
    answer = client.post("/v1/models", json=MODEL)
    assert answer.status_code == 201, answer.text
    client.post(
        "/v1/models/team/chunks?split=test",
        content=npz_body(digits.test.x, digits.test.y),
        headers=NPZ,
    ).raise_for_status()
    for start in (0, 300):
        client.post(
            "/v1/models/team/chunks?split=train",
            headers=NPZ,
            content=npz_body(
                digits.train.x[start : start + 300], digits.train.y[start : start + 300]
            ),
        ).raise_for_status()
    assert run_jobs() == ["published", "published"]  # the second one through LURE's reset
    versions = client.get("/v1/models/team/versions").json()
    assert [(v["number"], v["parent"]) for v in versions] == [(1, None), (2, 1)]
    assert versions[1]["mask_sha256"] is not None

    onnx = client.get("/v1/models/team/versions/2/export?format=onnx")
    assert onnx.status_code == 200, onnx.text
    images = digits.test.x[:10]
    served = [
        p["probabilities"]
        for p in client.post("/v1/models/team/predict", json={"images": png_images(images)}).json()[
            "predictions"
        ]
    ]
    session = onnxruntime.InferenceSession(onnx.content, providers=["CPUExecutionProvider"])
    logits = session.run(None, {"images": images})[0]
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert np.abs(probabilities - np.array(served)).max() < 1e-4


def test_llf_on_an_architecture_without_stages_needs_its_blocks_named(client, team_package):
    answer = client.post("/v1/models", json={**MODEL, "strategy": "llf"})
    assert answer.status_code == 422 and "name the modules to reset" in answer.json()["detail"]
    named = client.post(
        "/v1/models", json={**MODEL, "name": "team-llf", "strategy": "llf", "later_blocks": ["5"]}
    )
    assert named.status_code == 201, named.text
    missing = client.post(
        "/v1/models",
        json={**MODEL, "name": "team-bad", "strategy": "llf", "later_blocks": ["head"]},
    )
    assert missing.status_code == 422 and "no module named head" in missing.json()["detail"]


def test_an_unknown_architecture_suggests_close_names(client, team_package):
    answer = client.post("/v1/models", json={**MODEL, "architecture": "tinynett"})
    assert answer.status_code == 422 and "did you mean tinynet" in answer.text
