"""A small registry of network architectures, so model files can rebuild their network.

>>> model = create_model("maximask", width=0.5)
"""

from __future__ import annotations

from typing import Callable

import torch.nn as nn

__all__ = ["register_model", "create_model", "list_models"]

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Class decorator registering a network constructor under ``name``."""

    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS and _MODELS[name] is not factory:
            msg = f"model {name!r} is already registered"
            raise ValueError(msg)
        _MODELS[name] = factory
        return factory

    return decorator


def create_model(name: str, **kwargs) -> nn.Module:
    """Build the registered network ``name`` with constructor arguments ``kwargs``."""
    try:
        factory = _MODELS[name]
    except KeyError:
        msg = f"unknown architecture {name!r}; known: {', '.join(list_models())}"
        raise KeyError(msg) from None
    return factory(**kwargs)


def list_models() -> list[str]:
    """Names of the registered architectures."""
    return sorted(_MODELS)
