"""Typed configs: plain dataclasses, validated when a dict or Hydra node becomes one."""

from __future__ import annotations

from typing import Any, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from offrl.errors import ConfigError

T = TypeVar("T")


def typed(cls: type[T], node: Any, where: str) -> T:
    """``node`` (dict or DictConfig) as an instance of dataclass ``cls``; an unknown key or a wrong
    type becomes a ConfigError naming the key."""
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), node))
    except OmegaConfBaseException as err:
        key = f"{where}.{err.key}" if getattr(err, "key", None) else where
        raise ConfigError(f"{key}: {str(err).splitlines()[0]}") from None
