"""Model registry: architectures by name, each buildable at any width, channel count and size.

A :class:`ModelSpec` is everything needed to rebuild a model bit-for-bit from a seed, which is
what the forgetting strategies need to draw fresh initial values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from lure_engine.models import sources
from lure_engine.models.small import mlp, small_cnn
from lure_engine.models.vgg import vgg16_bn

Builder = Callable[..., nn.Module]
CIFAR, IMAGENET = "cifar", "imagenet"  # the pixel statistics an architecture expects by default


@dataclass(frozen=True)
class Architecture:
    """How to build an architecture, and what its defaults are.

    ``later_blocks``: LLF's default (None: found on the built model); ``normalization``: the pixel
    statistics a model of it expects unless told otherwise; ``scalable``: whether it takes a width.
    """

    builder: Callable[[ModelSpec], nn.Module]
    later_blocks: tuple[str, ...] | None
    normalization: str = CIFAR
    scalable: bool = True
    rgb_only: bool = False


def _builtin(factory: Builder, later_blocks: tuple[str, ...]) -> Architecture:
    def build(spec: ModelSpec) -> nn.Module:
        return factory(
            num_classes=spec.num_classes,
            channels=spec.channels,
            image_size=spec.image_size,
            width=spec.width,
            **spec.extra,
        )

    return Architecture(build, later_blocks)


def _resnet(name: str) -> Builder:
    """A CIFAR ResNet whose module (torchvision's blocks) loads at the first build: importing
    torchvision also imports ``torch._dynamo`` (about 2 s), which a process serving or testing
    another architecture never needs. The worker's fork server preloads it once."""

    def factory(**options: object) -> nn.Module:
        from lure_engine.models import resnet

        return getattr(resnet, name)(**options)

    return factory


ARCHITECTURES: dict[str, Architecture] = {
    "resnet18": _builtin(_resnet("resnet18"), ("layer3", "layer4")),
    "resnet50": _builtin(_resnet("resnet50"), ("layer3", "layer4")),
    "wide_resnet50_2": _builtin(_resnet("wide_resnet50_2"), ("layer3", "layer4")),
    "vgg16_bn": _builtin(vgg16_bn, ("stage5", "classifier")),
    "small_cnn": _builtin(small_cnn, ("block3", "head")),
    "mlp": _builtin(mlp, ("hidden2", "head")),
}


def resolve_architecture(name: str) -> Architecture:
    """The architecture ``name`` names: built-in, ``torchvision:…``, ``timm:…``, or an entry
    point."""
    if name in ARCHITECTURES:
        return ARCHITECTURES[name]
    bare = name.split(":", 1)[-1]
    if name.startswith(sources.TORCHVISION) and bare in sources.torchvision_names():
        return Architecture(
            lambda spec: sources.build_torchvision(bare, spec.num_classes),
            None,
            IMAGENET,
            scalable=False,
            rgb_only=True,
        )
    if name.startswith(sources.TIMM):
        if not sources.timm_available():
            raise ValueError(f"{name!r} needs timm: pip install 'lure-server[timm]'")
        if sources.timm_known(bare):
            return Architecture(
                lambda spec: sources.build_timm(bare, spec.num_classes, spec.channels),
                None,
                IMAGENET,
                scalable=False,
            )
    if name in sources.entry_point_factories():
        return Architecture(
            lambda spec: sources.build_entry_point(
                name, spec.num_classes, spec.channels, spec.image_size
            ),
            None,
            CIFAR,
            scalable=False,
        )
    suggestions = sources.close_matches(name, sorted(ARCHITECTURES))
    hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
    raise ValueError(
        f"unknown architecture {name!r}{hint} Use a built-in name "
        f"({', '.join(sorted(ARCHITECTURES))}), torchvision:NAME (any torchvision classification "
        "model), timm:NAME (with the timm extra), or a name registered in the "
        f"{sources.ENTRY_POINT_GROUP!r} entry point group"
    )


@dataclass(frozen=True)
class ModelSpec:
    """The full recipe of a model: architecture name and its shape parameters.

    ``later_blocks``: the modules LLF re-initialises, when not the architecture's default.
    """

    architecture: str
    num_classes: int
    channels: int = 3
    image_size: int = 32
    width: float = 1.0
    extra: dict = field(default_factory=dict)
    later_blocks_override: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        source = resolve_architecture(self.architecture)
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {self.num_classes}")
        if self.channels < 1 or self.image_size < 4:
            raise ValueError("channels must be >= 1 and image_size >= 4")
        if not self.width > 0:
            raise ValueError(f"width must be positive, got {self.width}")
        if self.width != 1.0 and not source.scalable:
            raise ValueError(
                f"{self.architecture} has a fixed width; width must be 1, got {self.width}"
            )
        if self.channels != 3 and source.rgb_only:
            raise ValueError(
                f"{self.architecture} takes RGB images: channels must be 3, got {self.channels}"
            )

    @property
    def architecture_source(self) -> Architecture:
        return resolve_architecture(self.architecture)

    @property
    def later_blocks(self) -> tuple[str, ...] | None:
        return self.later_blocks_override or self.architecture_source.later_blocks


def build_model(spec: ModelSpec, seed: int | None = None) -> nn.Module:
    """Build ``spec``; with a seed, the initial weights are a pure function of it."""
    builder = spec.architecture_source.builder
    if seed is None:
        return builder(spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return builder(spec)


def parameter_count(spec: ModelSpec) -> int | None:
    """Parameters of ``spec``, counted on PyTorch's meta device: no memory, no compute (None when
    a builder cannot run there)."""
    try:
        with torch.device("meta"):
            model = spec.architecture_source.builder(spec)
    except Exception:  # noqa: BLE001 - then the real build below is the only check
        return None
    return sum(p.numel() for p in model.parameters())


def probe_model(spec: ModelSpec, max_parameters: int | None = None) -> nn.Module:
    """Build ``spec`` and run a forward pass on a blank batch, so a model that cannot take these
    images (size, channels) or a failing entry point is refused when the model is created, with
    the reason, and not in its first update. A model over ``max_parameters`` is refused before
    anything is allocated (its parameters are counted on the meta device). The forward pass runs
    on real weights: on the meta device it imports ``torch._dynamo`` (+160 MB, a second), more
    than a small model's weights cost; a large one is probed in a child process by the server
    (``service/operations/model_probe.py``)."""
    count = parameter_count(spec) if max_parameters is not None else None
    if count is not None and max_parameters is not None and count > max_parameters:
        raise ValueError(
            f"{spec.architecture} at width {spec.width} has {count:,} parameters, more than this "
            f"server's limit of {max_parameters:,} (LURE_MAX_MODEL_PARAMETERS)"
        )
    return _forward_blank(spec, seed=0)


def _forward_blank(spec: ModelSpec, seed: int | None) -> nn.Module:
    """``spec`` built and run on two blank images of its size; ValueError naming what failed."""
    shape = f"{spec.channels}x{spec.image_size}x{spec.image_size}"
    try:
        model = build_model(spec, seed=seed).eval()
        with torch.no_grad():
            logits = model(torch.zeros(2, spec.channels, spec.image_size, spec.image_size))
    except Exception as error:  # noqa: BLE001 - any failure here is the configuration's
        raise ValueError(f"{spec.architecture} cannot take {shape} images: {error}") from None
    if tuple(logits.shape) != (2, spec.num_classes):
        raise ValueError(
            f"{spec.architecture} returned {tuple(logits.shape)} for a batch of 2 "
            f"{shape} images, not (2, {spec.num_classes}) logits"
        )
    return model


def default_normalization(name: str) -> str:
    """The pixel statistics ``name``'s weights expect (``cifar`` or ``imagenet``), without
    importing a registry: ``torchvision:``/``timm:`` models are ImageNet models by their prefix
    (whether the name exists is checked when the model is probed)."""
    if name.startswith((sources.TORCHVISION, sources.TIMM)):
        return IMAGENET
    return resolve_architecture(name).normalization


def available_models() -> list[str]:
    """The built-in names (any torchvision:NAME, timm:NAME or entry point name also works)."""
    return sorted(ARCHITECTURES)
