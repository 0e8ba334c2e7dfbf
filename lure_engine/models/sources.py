"""Architectures from outside this project: torchvision's and timm's model registries, and a team's
own ``nn.Module`` registered through the ``lure.architectures`` entry point group.

Names: ``torchvision:resnet50``, ``timm:mobilenetv3_small_050``, or an entry point's own name. Every
model is built with random weights (``weights=None`` / ``pretrained=False``): the server never
downloads weights; a team brings its own through an import.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points

from torch import nn

TORCHVISION = "torchvision:"
TIMM = "timm:"
ENTRY_POINT_GROUP = "lure.architectures"

# an entry point's factory: (num_classes, channels, image_size) -> nn.Module
Factory = Callable[[int, int, int], nn.Module]


@lru_cache(maxsize=1)
def torchvision_names() -> tuple[str, ...]:
    """Classification models only (detection, segmentation and video live in sub-modules)."""
    import torchvision

    return tuple(torchvision.models.list_models(module=torchvision.models))


def timm_available() -> bool:
    try:
        import timm  # noqa: F401
    except ImportError:
        return False
    return True


def timm_known(name: str) -> bool:
    import timm

    return bool(timm.list_models(name))


def entry_point_factories() -> dict[str, EntryPoint]:
    """Name → entry point (loaded on first use), for every installed ``lure.architectures``."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def build_torchvision(name: str, num_classes: int) -> nn.Module:
    import torchvision

    return torchvision.models.get_model(name, weights=None, num_classes=num_classes)


def build_timm(name: str, num_classes: int, channels: int) -> nn.Module:
    import timm

    return timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=channels)


def build_entry_point(name: str, num_classes: int, channels: int, image_size: int) -> nn.Module:
    factory: Factory = entry_point_factories()[name].load()
    model = factory(num_classes, channels, image_size)
    if not isinstance(model, nn.Module):
        raise TypeError(f"entry point {name!r} returned {type(model).__name__}, not an nn.Module")
    return model


def close_matches(name: str, builtin: list[str]) -> list[str]:
    """Known names that look like ``name``, for the error that refuses it."""
    bare = name.split(":", 1)[-1]
    candidates = builtin + list(entry_point_factories())
    candidates += [TORCHVISION + n for n in torchvision_names()]
    found = difflib.get_close_matches(name, candidates, n=5, cutoff=0.6)
    found += [TORCHVISION + n for n in difflib.get_close_matches(bare, torchvision_names(), n=3)]
    return list(dict.fromkeys(found))[:5]


def default_later_blocks(model: nn.Module) -> tuple[str, ...] | None:
    """LLF's default for a model from a registry: its last two stages, where it has stages.

    Numbered stages (ResNet's ``layer3``, ``layer4``; ShuffleNet's ``stage3``, ``stage4``); a
    ``features``, ``stages`` or ``blocks`` container (MobileNet, EfficientNet, VGG, timm models):
    its last two children. None when the model has none of these: then LLF needs
    ``later_blocks`` named explicitly.
    """
    children = dict(model.named_children())
    numbered = sorted(
        (int(m.group(2)), name)
        for name in children
        if (m := re.fullmatch(r"(layer|stage)(\d+)", name))
    )
    if len(numbered) >= 2:
        return tuple(name for _, name in numbered[-2:])
    for container in ("features", "stages", "blocks"):
        parts = list(dict(children.get(container, nn.Module()).named_children()))
        if len(parts) >= 2:
            return tuple(f"{container}.{part}" for part in parts[-2:])
    return None
