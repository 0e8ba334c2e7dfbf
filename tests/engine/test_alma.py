import numpy as np

from lure_engine.alma import AlmaConfig, make_stream, run_alma
from lure_engine.trainer import TrainConfig
from lure_engine.update import UpdateConfig


def test_stream_is_equal_disjoint_and_split_90_10():
    stream = make_stream(1000, 8, seed=0)
    sizes = {len(m.train_ids) + len(m.val_ids) for m in stream}
    assert sizes == {125}
    everything = np.concatenate([np.concatenate([m.train_ids, m.val_ids]) for m in stream])
    assert len(set(everything.tolist())) == 1000
    assert all(len(m.val_ids) == round(0.1 * 125) for m in stream)
    assert [m.index for m in stream] == list(range(1, 9))


def test_simulator_records_cer_as_running_sum_and_replay_sizes(digits):
    config = AlmaConfig(
        model="mlp",
        width=0.25,
        strategies=("warm", "lure"),
        replay="buffer:50",
        megabatches=3,
        seeds=(0,),
        update=UpdateConfig(train=TrainConfig(epochs=2, hflip=False, crop_padding=1)),
    )
    results = run_alma(digits, config, device="cpu")
    assert [r["strategy"] for r in results["runs"]] == ["warm", "lure"]
    for run in results["runs"]:
        records = run["megabatches"]
        assert np.array_equal(
            np.cumsum([r["test_errors"] for r in records]), [r["cer"] for r in records]
        )
        per_megabatch = len(digits.train) // 3 - round(0.1 * (len(digits.train) // 3))
        assert records[0]["train_samples"] == per_megabatch
        assert all(r["train_samples"] == per_megabatch + 50 for r in records[1:])
    lure = results["runs"][1]["megabatches"]
    assert all(r["importance_seconds"] > 0 for r in lure)
    assert all(r["importance_seconds"] == 0 for r in results["runs"][0]["megabatches"])


def test_epoch_curve_records_test_accuracy_after_every_epoch(digits):
    config = AlmaConfig(
        model="mlp",
        width=0.25,
        strategies=("warm", "lure"),
        replay="full",
        megabatches=2,
        seeds=(0,),
        epoch_curve=True,
        update=UpdateConfig(train=TrainConfig(epochs=3, hflip=False, crop_padding=1)),
    )
    results = run_alma(digits, config, device="cpu")
    for run in results["runs"]:
        for record in run["megabatches"]:
            curve = record["epoch_test_accuracy"]
            assert len(curve) == 3
            # the last epoch's model is the one evaluated after the update
            assert curve[-1] == record["test_accuracy"]
    off = run_alma(
        digits,
        AlmaConfig(**{**config.__dict__, "epoch_curve": False, "strategies": ("warm",)}),
        device="cpu",
    )
    assert off["runs"][0]["megabatches"][0]["epoch_test_accuracy"] == []
    # recording curves evaluates only: it must not change what training does
    assert (
        off["runs"][0]["megabatches"][-1]["test_accuracy"]
        == results["runs"][0]["megabatches"][-1]["test_accuracy"]
    )
