"""Your model in, your model out (issue 13): a torchvision model trained offline with plain PyTorch
is imported as version 0, serves the same predictions, is updated, and every version leaves the
server as safetensors, TorchScript and ONNX that reproduce ``/predict`` outside the project.
"""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import onnxruntime
import pytest
import torch
import torchvision
from PIL import Image
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from sqlalchemy import func, select

from lure_client.client import state_dict_file
from lure_core.records import VersionRow
from service.api.schemas import PredictResponse
from tests.helpers import NPZ, npz_body, png_images

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
MODEL = {
    "name": "mnv3",
    "architecture": "torchvision:mobilenet_v3_small",
    "num_classes": 10,
    "image_size": 32,
    "channels": 3,
    "strategy": "lure",
    "epochs": 1,
    "megabatch_size": 300,
    "batch_size": 32,
    "lr": 0.01,
    "hflip": False,
    "class_names": DIGIT_NAMES,
}


def offline_inputs(gray: np.ndarray) -> torch.Tensor:
    """Plain PIL + torch, not the project's code: 8x8 digits → RGB 32x32 → ImageNet-normalised."""
    images = [
        np.asarray(Image.fromarray(g[..., 0]).convert("RGB").resize((32, 32), Image.BILINEAR))
        for g in gray
    ]
    x = (np.stack(images).astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()


@pytest.fixture(scope="module")
def offline(digits, tmp_path_factory) -> tuple[torch.nn.Module, bytes]:
    """A team's model: torchvision's MobileNetV3-Small trained a few steps, saved as a .pth."""
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v3_small(num_classes=10)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = offline_inputs(digits.train.x[:512]), torch.from_numpy(digits.train.y[:512])
    for step in range(30):
        batch = slice((step * 64) % 512, (step * 64) % 512 + 64)
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model.train()(x[batch]), y[batch]).backward()
        optimiser.step()
    path = tmp_path_factory.mktemp("team") / "mobilenet.pth"
    torch.save({"state_dict": model.state_dict(), "epoch": 1}, path)
    return model.eval(), state_dict_file(path)


@pytest.fixture()
def imported(client, digits, offline):
    assert client.post("/v1/models", json=MODEL).status_code == 201
    client.post(
        "/v1/models/mnv3/chunks?split=test",
        content=npz_body(digits.test.x, digits.test.y),
        headers=NPZ,
    ).raise_for_status()
    answer = client.post("/v1/models/mnv3/versions/import", content=offline[1], headers=NPZ)
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_an_imported_model_serves_what_it_served_offline(client, digits, offline, imported):
    assert imported["number"] == 0 and imported["parent"] is None and imported["megabatch"] is None
    assert imported["live"] and imported["origin"] == "import"
    assert imported["metrics"]["test_samples"] == len(digits.test.x)
    held_out = digits.test.x[:40]
    answer = client.post("/v1/models/mnv3/predict?top_k=3", json={"images": png_images(held_out)})
    assert answer.status_code == 200 and answer.json()["version"] == 0
    with torch.no_grad():
        expected = offline[0](offline_inputs(held_out)).softmax(1).numpy()
    served = np.array([p["probabilities"] for p in answer.json()["predictions"]])
    assert np.abs(served - expected).max() < 1e-5
    for prediction, probabilities in zip(answer.json()["predictions"], expected, strict=True):
        assert prediction["label"] == int(probabilities.argmax())
        assert prediction["class_name"] == DIGIT_NAMES[prediction["label"]]
        assert [t["label"] for t in prediction["top_k"]] == list(np.argsort(-probabilities)[:3])
    # the answer is built without pydantic: it must still be exactly the documented schema
    documented = PredictResponse.model_validate(answer.json()).model_dump(mode="json")
    assert documented == answer.json() and answer.headers["content-type"] == "application/json"
    assert answer.headers["x-model-version"] == "0"


def test_an_update_from_the_import_then_exports_that_reproduce_predict(
    client, digits, imported, run_jobs
):
    client.post(
        "/v1/models/mnv3/chunks?split=train",
        headers=NPZ,
        content=npz_body(digits.train.x[:300], digits.train.y[:300]),
    ).raise_for_status()
    assert run_jobs() == ["published"]
    version = client.get("/v1/models/mnv3/versions/1").json()
    assert version["parent"] == 0 and version["live"] and version["origin"] == "update", version[
        "gate"
    ]
    assert "initial_mask" in version["seeds"]  # LURE's first mask, computed on the new mega-batch

    held_out = digits.test.x[:24]
    served = np.array(
        [
            p["probabilities"]
            for p in client.post(
                "/v1/models/mnv3/predict", json={"images": png_images(held_out)}
            ).json()["predictions"]
        ]
    )
    for fmt in ("safetensors", "torchscript", "onnx"):
        answer = client.get(f"/v1/models/mnv3/versions/1/export?format={fmt}")
        assert answer.status_code == 200, answer.text
        card = client.get(f"/v1/models/mnv3/versions/1/export/card?format={fmt}").json()
        assert (
            card["sha256"]
            == hashlib.sha256(answer.content).hexdigest()
            == answer.headers["x-artefact-sha256"]
        )
        assert card["verification"]["max_abs_logit_diff"] <= card["verification"]["tolerance"]
        assert [step["version"] for step in card["lineage"]] == [1, 0]
        assert card["class_names"] == DIGIT_NAMES and card["preprocessing"]["size"] == 32
        assert np.abs(_outside(fmt, answer.content, held_out) - served).max() < 1e-4, fmt
    again = client.get("/v1/models/mnv3/versions/1/export?format=onnx")  # built once, then served
    assert again.headers["x-artefact-sha256"] == card["sha256"]


def _outside(fmt: str, data: bytes, gray: np.ndarray) -> np.ndarray:
    """Probabilities from an exported artefact, with nothing of this project loaded."""
    uint8 = np.stack(
        [
            np.asarray(Image.fromarray(g[..., 0]).convert("RGB").resize((32, 32), Image.BILINEAR))
            for g in gray
        ]
    )
    if fmt == "safetensors":
        model = torchvision.models.mobilenet_v3_small(num_classes=10)
        model.load_state_dict(load_safetensors(data))
        with torch.no_grad():
            logits = model.eval()(offline_inputs(gray)).numpy()
    elif fmt == "torchscript":
        with torch.no_grad():
            logits = torch.jit.load(io.BytesIO(data))(torch.from_numpy(uint8)).numpy()
    else:
        session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
        logits = session.run(None, {"images": uint8})[0]
    return torch.from_numpy(logits).softmax(1).numpy()


def _bodies(offline) -> dict[str, tuple[bytes, int, str]]:
    good = load_safetensors(offline[1])
    wrong_keys = {f"backbone.{name}": tensor for name, tensor in good.items()}  # a wrapped model's
    wrong_shape = dict(good) | {
        "classifier.3.weight": torch.zeros(7, 1024),
        "classifier.3.bias": torch.zeros(7),
    }
    pickled = io.BytesIO()
    torch.save(good, pickled)
    return {
        "wrong keys": (save_safetensors(wrong_keys), 422, "missing tensor features.0.0.weight"),
        "wrong shapes": (
            save_safetensors(wrong_shape),
            422,
            "tensor classifier.3.weight has shape [7, 1024], the model's is [10, 1024]",
        ),
        "a pickle": (pickled.getvalue(), 422, "not a safetensors file"),
        "truncated": (offline[1][: len(offline[1]) // 2], 422, "the file is truncated"),
        "huge": (b"\0" * 20_000_001, 413, "exceeds the limit of 20000000 bytes"),
    }


@pytest.mark.parametrize("case", ["wrong keys", "wrong shapes", "a pickle", "truncated", "huge"])
def test_a_bad_import_is_refused_naming_the_problem_and_stores_nothing(
    client, digits, offline, stored, worker_ctx, case
):
    client.post("/v1/models", json=MODEL).raise_for_status()
    before = stored()
    body, status, message = _bodies(offline)[case]
    answer = client.post("/v1/models/mnv3/versions/import", content=body, headers=NPZ)
    assert answer.status_code == status and message in answer.json()["detail"], answer.text
    assert stored() == before
    with worker_ctx.sessions() as session:
        assert session.scalar(select(func.count()).select_from(VersionRow)) == 0
    assert client.get("/v1/models/mnv3").json()["live_version"] is None


def test_importing_into_a_model_with_versions_is_a_conflict(client, offline, imported):
    answer = client.post("/v1/models/mnv3/versions/import", content=offline[1], headers=NPZ)
    assert answer.status_code == 409 and "already has versions" in answer.json()["detail"]


@pytest.mark.parametrize(
    "override,status,message",
    [
        ({"architecture": "torchvision:mobilenet_v3_smal"}, 422, "torchvision:mobilenet_v3_small"),
        (
            {"architecture": "torchvision:mobilenet_v3_small", "channels": 1},
            422,
            "channels must be 3",
        ),
        ({"architecture": "torchvision:vit_b_16"}, 422, "cannot take 3x32x32 images"),
        ({"class_names": ["a", "b"]}, 422, "class_names needs 10 distinct names"),
        ({"mean": [0.5]}, 422, "mean and std need 3 values"),
        # 4.3 billion parameters: sized on the meta device and refused before any allocation
        ({"architecture": "wide_resnet50_2", "width": 8}, 422, "LURE_MAX_MODEL_PARAMETERS"),
    ],
)
def test_architectures_and_preprocessing_are_checked_at_creation(client, override, status, message):
    answer = client.post("/v1/models", json={**MODEL, **override})
    assert answer.status_code == status and message in answer.text, answer.text


def test_registry_models_default_to_imagenet_statistics(client):
    config = client.post("/v1/models", json=MODEL).json()["config"]
    assert config["mean"] == pytest.approx([0.485, 0.456, 0.406]) and config["resize"] == "squash"
    json.dumps(config)  # stored as plain JSON


def test_an_imported_version_is_not_auditable_and_says_so_without_an_audit_process(
    client, imported, monkeypatch
):
    import lure_update.audit

    def no_process(*_args):
        raise AssertionError("an audit process was started for imported weights")

    monkeypatch.setattr(lure_update.audit, "run_audit_process", no_process)
    report = client.post("/v1/models/mnv3/versions/0/audit").json()
    assert report["result"] == "not_auditable" and "imported weights" in report["reason"]
