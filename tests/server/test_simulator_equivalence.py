"""A benchmark measures exactly what production runs: two mega-batches through the ALMA simulator
and through the worker's update job, on the same data and seeds, give the same metrics and the
same weights, bit for bit (issue 12).
"""

from __future__ import annotations

from dataclasses import asdict

import torch
from safetensors.torch import load_file
from sqlalchemy import select

from lure_core.records import METRIC_FIELDS, MetricsRow, VersionRow
from lure_engine.alma import AlmaConfig, make_stream, run_stream
from lure_engine.augment import default_crop_padding
from lure_engine.seeding import derive_seed
from lure_engine.trainer import TrainConfig
from lure_engine.update import UpdateConfig
from tests.helpers import DIGITS_MODEL, NPZ, npz_body

TIMINGS = {
    "train_seconds",
    "unlearn_seconds",
    "reset_seconds",
    "importance_seconds",
    "evaluate_seconds",
}
RECIPE = {**DIGITS_MODEL, "epochs": 3, "megabatch_size": 719, "seed": 0}


def _simulate(digits) -> tuple[list, dict]:
    train = TrainConfig(
        epochs=RECIPE["epochs"],
        batch_size=RECIPE["batch_size"],
        lr=RECIPE["lr"],
        hflip=RECIPE["hflip"],
        crop_padding=default_crop_padding(RECIPE["image_size"]),
    )
    config = AlmaConfig(
        model=RECIPE["architecture"],
        width=RECIPE["width"],
        strategies=("lure",),
        replay="full",
        megabatches=2,
        seeds=(RECIPE["seed"],),
        update=UpdateConfig(train=train),
    )
    models = {}
    records = run_stream(
        digits,
        config,
        "lure",
        RECIPE["seed"],
        device=torch.device("cpu"),
        on_model=lambda index, model: models.update(
            {index: {k: v.detach().clone() for k, v in model.state_dict().items()}}
        ),
    )
    return records, models


def test_the_simulator_and_the_worker_compute_the_same_update(
    client, digits, worker_ctx, settings, run_jobs
):
    records, simulated_weights = _simulate(digits)
    assert client.post("/v1/models", json=RECIPE).status_code == 201
    client.post(
        "/v1/models/digits/chunks?split=test",
        content=npz_body(digits.test.x, digits.test.y),
        headers=NPZ,
    )
    stream = make_stream(
        len(digits.train), 2, derive_seed(RECIPE["seed"], "stream"), split_seed=RECIPE["seed"]
    )
    for megabatch in stream:  # the simulator's mega-batches, posted in their arrival order
        x, y = digits.train.x[megabatch.ids], digits.train.y[megabatch.ids]
        assert client.post(
            "/v1/models/digits/chunks?split=train", content=npz_body(x, y), headers=NPZ
        ).json()["sealed"]
        assert run_jobs() == ["published"]

    with worker_ctx.sessions() as session:
        rows = session.execute(
            select(VersionRow, MetricsRow)
            .join(MetricsRow, MetricsRow.version_id == VersionRow.id)
            .order_by(VersionRow.number)
        ).all()
    assert len(rows) == len(records) == 2
    for record, (version, metrics) in zip(records, rows, strict=True):
        simulated = {
            k: v for k, v in asdict(record).items() if k in METRIC_FIELDS and k not in TIMINGS
        }
        served = {k: getattr(metrics, k) for k in simulated}
        assert served == simulated, version.number
        assert metrics.reliability == record.reliability
        weights = load_file(settings.blob_dir / version.checkpoint_key)
        expected = simulated_weights[version.number]
        assert weights.keys() == expected.keys()
        assert all(torch.equal(weights[k], expected[k]) for k in weights), version.number
    assert records[1].cer == records[0].cer + records[1].test_errors
