"""The configuration of one update, as plain data: every default and bound of training and
forgetting, in one torch-free module, so the server's API schema, its recipe and the bench CLI
derive their defaults from here without loading the engine (``lure`` starts in a fraction of a
second).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TrainConfig:
    """The paper's recipe by default: SGD 0.1, momentum 0.9, wd 1e-4, ×0.1 at 40 % and 80 %."""

    epochs: int = 50
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    milestones: tuple[float, ...] = (0.4, 0.8)
    gamma: float = 0.1
    hflip: bool = True
    crop_padding: int = 4
    keep_best_on_validation: bool = False
    # start from the previous update's SGD momentum buffers (the paper's code keeps one optimiser
    # for the whole stream) instead of zero momentum
    carry_momentum: bool = False
    amp: bool = True  # bf16 autocast, used on CUDA only
    # NHWC layout, CUDA only: on the CPU it was 18 % faster, but torch 2.14.1's channels_last CPU
    # backward kernels corrupt the heap on some CPUs (lure_engine.data.for_backward)
    channels_last: bool = True
    # Train to convergence (Ash & Adams 2020, DASH): stop after the first epoch whose running
    # training accuracy (its mini-batches, as trained on) reaches this; ``epochs`` is then the cap
    # and the learning-rate milestones count from it. None: train exactly ``epochs``.
    until_train_accuracy: float | None = None
    # After training, recompute every BatchNorm layer's running statistics with the final weights
    # on the (un-augmented) training rows (``torch.optim.swa_utils.update_bn``). The running
    # averages of a short update lag weights that moved: after importing a ShuffleNetV2 at 32 px
    # (1×1 maps in its last stages) the first update lost 3 points and doubled its ECE without
    # this; on the CIFAR ResNets it changes test accuracy by less than a point
    # (docs/BENCHMARKS.md, "Imported models and BatchNorm statistics").
    recalibrate_norm: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError("epochs and batch_size must be >= 1 and lr > 0")
        if self.until_train_accuracy is not None and not 0.0 < self.until_train_accuracy <= 1.0:
            raise ValueError(
                f"until_train_accuracy must lie in (0, 1], got {self.until_train_accuracy}"
            )


# When the keep-mask is scored. ``after_training`` (default): on a random sample of the mega-batch
# just trained on, kept for the next update. ``before_reset`` (the paper's public code): on the
# parent at the start of the update, on the first rows of the training set (replay first, so with
# full replay that is old data), just before the reset it drives.
IMPORTANCE_TIMINGS = ("after_training", "before_reset")


@dataclass(frozen=True)
class UpdateConfig:
    """One update: the forgetting strategy, how importance is scored, and its training."""

    strategy: str = "lure"
    importance: str = "snip"
    keep_fraction: float = 0.8
    scope: str = "conv_linear_weights"
    reset_source: str = "fresh_model"
    importance_sample_fraction: float = 0.2
    importance_sample_size: int = 0  # > 0: exactly this many rows instead of the fraction
    importance_timing: str = "after_training"
    # score the importance mask after training even when this strategy does not use it (a sibling
    # candidate that unlearns may start from this version next time)
    always_estimate_mask: bool = False
    strategy_options: dict = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        from lure_engine.forgetting import make_strategy  # torch: only when a config is built

        make_strategy(self.strategy, **self.strategy_options)  # fails early on a bad name
        if not 0.0 < self.keep_fraction < 1.0:
            raise ValueError(f"keep fraction must lie in (0, 1), got {self.keep_fraction}")
        if not 0.0 < self.importance_sample_fraction <= 1.0:
            raise ValueError("importance sample fraction must lie in (0, 1]")
        if self.importance_sample_size < 0:
            raise ValueError("importance sample size must be >= 0 (0: use the fraction)")
        if self.importance_timing not in IMPORTANCE_TIMINGS:
            raise ValueError(
                f"unknown importance timing {self.importance_timing!r}; "
                f"choose {', '.join(IMPORTANCE_TIMINGS)}"
            )
