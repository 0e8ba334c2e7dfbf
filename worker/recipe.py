"""Translate a stored model config (the API's JSON) into the engine's spec and update settings."""

from __future__ import annotations

from lure_engine.augment import default_crop_padding
from lure_engine.models import ModelSpec
from lure_engine.seeding import derive_seed
from lure_engine.trainer import TrainConfig
from lure_engine.update import UpdateConfig


def model_spec(config: dict) -> ModelSpec:
    return ModelSpec(config["architecture"], config["num_classes"], config["channels"],
                     config["image_size"], config["width"])


def update_config(config: dict) -> UpdateConfig:
    train = TrainConfig(
        epochs=config["epochs"], batch_size=config["batch_size"], lr=config["lr"],
        momentum=config["momentum"], weight_decay=config["weight_decay"],
        hflip=config["hflip"], crop_padding=default_crop_padding(config["image_size"]),
    )
    return UpdateConfig(strategy=config["strategy"], importance=config["importance"],
                        keep_fraction=config["keep_fraction"], train=train)


def replay_spec(config: dict) -> str:
    return f"buffer:{config['buffer_size']}" if config["replay"] == "buffer" else config["replay"]


def init_seed(config: dict) -> int:
    return derive_seed(config["seed"], "init")


def split_seed(config: dict, megabatch_index: int) -> int:
    return derive_seed(config["seed"], "split", megabatch_index) % 2**31
