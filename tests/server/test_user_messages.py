"""What a user reads (issue 23 G): the ONNX example on a grayscale model's export, a missing key
naming where keys come from, and one version's gate record from the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lure_client.client import LureClient, LureError
from lure_client.remote import VERSION_COLUMNS, _version_detail, _version_row

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_onnx_example_runs_on_a_grayscale_models_export(client, two_versions, tmp_path):
    """The demo's digits model takes 8x8 grayscale: the example used to force RGB and crash."""
    onnx = client.get("/v1/models/digits/versions/2/export?format=onnx")
    card = client.get("/v1/models/digits/versions/2/export/card?format=onnx").json()
    assert card["preprocessing"]["channels"] == 1
    path = tmp_path / "digits-v2.onnx"
    path.write_bytes(onnx.content)
    path.with_name(path.name + ".card.json").write_text(json.dumps(card))
    ran = subprocess.run(
        [sys.executable, str(EXAMPLES / "run_onnx.py"), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "accuracy on all 1797 digits with ONNX Runtime" in ran.stdout


def test_a_request_without_a_key_says_where_keys_come_from(client):
    remote = LureClient()
    remote.http.close()
    client.headers.pop("Authorization")
    remote.http = client
    with pytest.raises(LureError) as refused:
        remote.models()
    assert refused.value.status == 401
    assert "LURE_API_KEY" in refused.value.detail and "--api-key" in refused.value.detail


def test_one_version_shows_its_gate_record():
    version = {
        "number": 4,
        "megabatch": 4,
        "strategy": "lure",
        "metrics": {"test_accuracy": 0.989, "cer": 28},
        "sha256": "a" * 64,
        "release": "held",
        "live": False,
        "release_note": "held by the promotion gate: accuracy changed by -0.0250",
        "gate": {
            "verdict": "held",
            "reasons": ["accuracy changed by -0.0250 (0.9500 → 0.9250), below the minimum -0.01"],
            "numbers": {"accuracy_delta": -0.025, "rows": 120},
            "winner": True,
            "rank_by": "accuracy",
        },
    }
    text = _version_detail(version)
    assert "gate: held (winner)" in text
    assert "reason: accuracy changed by -0.0250" in text and "accuracy_delta: -0.025" in text


def test_the_versions_table_puts_each_versions_steps_beside_its_accuracy(client, two_versions):
    """Compute-to-accuracy in the CLI as on the dashboard (issue 25 §1): each trained version's
    optimiser steps as the worker recorded them, and its epochs in the one-version view."""
    versions = client.get("/v1/models/digits/versions").json()
    column = VERSION_COLUMNS.index("steps")
    for version in versions:
        metrics = version["metrics"]
        assert metrics["optimizer_steps"] > 0 and metrics["epochs_trained"] > 0
        cells = _version_row(version, None)
        assert len(cells) == len(VERSION_COLUMNS)
        assert cells[column] == str(metrics["optimizer_steps"])
        compute = f"compute: {metrics['epochs_trained']} epochs, {metrics['optimizer_steps']} "
        assert compute + "optimiser steps" in _version_detail(version)
    imported = {**versions[0], "megabatch": None, "metrics": {"test_accuracy": 0.9}}
    assert _version_row(imported, None)[column] == "–"  # an import trained nothing here
