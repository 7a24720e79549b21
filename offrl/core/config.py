"""Typed configs: plain dataclasses, validated when a dict or Hydra node becomes one."""

from __future__ import annotations

import difflib
from dataclasses import fields
from typing import Any, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from offrl.core.errors import ConfigError

T = TypeVar("T")


def typed(cls: type[T], node: Any, where: str) -> T:
    """``node`` (dict or DictConfig) as an instance of dataclass ``cls``; an unknown key or a wrong
    type becomes a ConfigError naming the key."""
    try:
        # as a plain container first: a node that Hydra composed against ``cls`` itself may carry
        # keys appended with ``+key=...``, and merging it as a typed node would keep them
        plain = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), plain))
    except ConfigKeyError as err:
        names = [f.name for f in fields(cls)]
        close = difflib.get_close_matches(str(err.key), names, n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(f'{where}.{c}' for c in close)}?" if close else f"expected one of {names}"
        article = "an" if where[:1] in "aeiou" else "a"
        raise ConfigError(f"{where}.{err.key} is not {article} {where} option; {hint}") from None
    except OmegaConfBaseException as err:
        key = f"{where}.{err.key}" if getattr(err, "key", None) else where
        raise ConfigError(f"{key}: {str(err).splitlines()[0]}") from None
