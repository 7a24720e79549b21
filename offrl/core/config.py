"""Typed configs: plain dataclasses whose fields declare the values they admit, checked when a dict or Hydra node
becomes one (``typed``) and where code is handed a config it did not parse (``validate``).

A field declares its range with its default::

    actor_lr: float = positive(3e-4)  # > 0
    discount: float = fraction(0.99)  # in [0, 1]
    tau: float = rate(0.005)  # in (0, 1]
    num_qs: int = copies(10)  # in [1, MAX_COPIES]
    hidden_dims: list[int] = widths([256, 256])  # a non-empty list of widths
    mode: str = one_of("offline", "online")  # the first option is the default

Whatever a field declares, a float is finite and an int at most MAX_COUNT in size; a config may add the rules that
tie its fields together in a method ``check(where)``. A value outside its range is a ConfigError naming the full
key and what was expected: ``agent.actor_lr=-0.001: expected a positive finite number``.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, TypeVar, get_type_hints

from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from offrl.core.errors import ConfigError

T = TypeVar("T")

MAX_COUNT = 10**12  # any integer: steps, intervals, updates (no run reaches this many)
MAX_ROWS = 10**9  # rows held at once: replay buffers, datasets
MAX_BATCH = 2**20  # rows or time steps processed at once: batch sizes, sampling chunks, windows, sampler steps
MAX_WIDTH = 2**14  # units or channels of one layer
MAX_COPIES = 2**10  # things made side by side: ensemble members, experts, blocks, samples per state, envs, threads
SEED_MAX = 2**32 - 1  # numpy's largest seed


@dataclass(frozen=True)
class Range:
    """Numbers from ``low`` to ``high``, each end included unless open; a float must also be finite and an int at
    most MAX_COUNT in size."""

    low: float = -math.inf
    high: float = math.inf
    open_low: bool = False
    open_high: bool = False

    def problem(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        inside = ((value > self.low if self.open_low else value >= self.low)
                  and (value < self.high if self.open_high else value <= self.high))
        ok = abs(value) <= MAX_COUNT if isinstance(value, int) else math.isfinite(value)
        return None if inside and ok else f"expected {self.describe(isinstance(value, int))}"

    def describe(self, integer: bool) -> str:
        if integer:
            low, high = max(self.low, -MAX_COUNT), min(self.high, MAX_COUNT)
            low = math.floor(low) + 1 if self.open_low else math.ceil(low)
            high = math.ceil(high) - 1 if self.open_high else math.floor(high)
            return f"a positive integer at most {high:,}" if low == 1 else f"an integer from {low:,} to {high:,}"
        if math.isinf(self.high):
            if math.isinf(self.low):
                return "a finite number"
            if self.low == 0 and self.open_low:
                return "a positive finite number"
            return f"a finite number {'>' if self.open_low else '>='} {self.low:g}"
        if math.isinf(self.low):
            return f"a finite number {'<' if self.open_high else '<='} {self.high:g}"
        return f"a number in {'(' if self.open_low else '['}{self.low:g}, {self.high:g}{')' if self.open_high else ']'}"


@dataclass(frozen=True)
class Each:
    """A non-empty list whose every element ``item`` admits."""

    item: Range

    def problem(self, value: Any) -> str | None:
        if isinstance(value, list) and value and not any(self.item.problem(x) for x in value):
            return None
        integer = isinstance(value, list) and all(isinstance(x, int) for x in value)
        return f"expected a non-empty list, each {self.item.describe(integer)}"


@dataclass(frozen=True)
class OneOf:
    """One of a few strings."""

    options: tuple[str, ...]

    def problem(self, value: Any) -> str | None:
        return None if value in self.options else f"expected one of {', '.join(self.options)}"


def ranged(default: Any, rule: Range | Each | OneOf) -> Any:
    """A dataclass field with ``default`` (a list is copied for each instance) whose values ``rule`` admits."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"rule": rule})
    return field(default=default, metadata={"rule": rule})


def positive(default: Any, most: float = math.inf) -> Any:
    """> 0 (an int: >= 1), at most ``most``."""
    return ranged(default, Range(0, most, open_low=True))


def non_negative(default: Any, most: float = math.inf) -> Any:
    """>= 0, at most ``most``."""
    return ranged(default, Range(0, most))


def fraction(default: Any) -> Any:
    """In [0, 1]: a probability, a share, a discount."""
    return ranged(default, Range(0, 1))


def rate(default: Any) -> Any:
    """In (0, 1]: an averaging rate, a share that cannot be zero."""
    return ranged(default, Range(0, 1, open_low=True))


def dropout(default: Any) -> Any:
    """A dropout probability: in [0, 1)."""
    return ranged(default, Range(0, 1, open_high=True))


def copies(default: Any) -> Any:
    """How many things are made side by side (ensemble members, experts, blocks, envs, threads): a positive integer
    at most MAX_COPIES."""
    return ranged(default, Range(0, MAX_COPIES, open_low=True))


def between(default: Any, low: float, high: float, *, open_low: bool = False, open_high: bool = False) -> Any:
    return ranged(default, Range(low, high, open_low, open_high))


def seed_value(default: Any) -> Any:
    """A random seed numpy takes: an integer from 0 to 2**32 - 1."""
    return ranged(default, Range(0, SEED_MAX))


def seed_list(default: list[int] | None) -> Any:
    """A non-empty list of seeds (``seed_value``)."""
    return ranged(default, Each(Range(0, SEED_MAX)))


def widths(default: list[int] | None) -> Any:
    """Hidden-layer widths: a non-empty list of positive integers, each at most MAX_WIDTH."""
    return ranged(default, Each(Range(0, MAX_WIDTH, open_low=True)))


def width(default: int) -> Any:
    """One layer's width (units or channels): a positive integer at most MAX_WIDTH."""
    return ranged(default, Range(0, MAX_WIDTH, open_low=True))


def one_of(*options: str) -> Any:
    """One of ``options``; the first is the default."""
    return ranged(options[0], OneOf(options))


def validate(cfg: Any, where: str) -> None:
    """Check each field of dataclass ``cfg`` against its rule (a number without one: finite, at most MAX_COUNT in
    size), nested dataclasses under their own keys, then the config's own ``check(where)`` if it has one; the first
    value outside is a ConfigError naming its key (``where.field``; ``where`` empty: the field's name alone)."""
    for f in fields(cfg):
        key = f"{where}.{f.name}" if where else f.name
        value = getattr(cfg, f.name)
        if is_dataclass(value):
            validate(value, key)
            continue
        problem = None if value is None else f.metadata.get("rule", Range()).problem(value)
        if problem is not None:
            nullable = " or null" if "None" in str(f.type) else ""
            raise ConfigError(f"{key}={value!r}: {problem}{nullable}")
    check = getattr(cfg, "check", None)
    if check is not None:
        check(where)


def typed(cls: type[T], node: Any, where: str) -> T:
    """``node`` (dict or DictConfig) as an instance of dataclass ``cls``, checked by ``validate``; an unknown key,
    a wrong type or a value out of range becomes a ConfigError naming the key (under ``where``; empty: top-level
    keys)."""
    try:
        # as a plain container first: a node that Hydra composed against ``cls`` itself may carry
        # keys appended with ``+key=...``, and merging it as a typed node would keep them
        plain = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
        cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), plain))
    except ConfigKeyError as err:
        *parents, leaf = str(err.full_key or err.key).split(".")
        owner = cls
        for name in parents:  # a key of a nested config: its own options
            owner = get_type_hints(owner)[name]
        names = [f.name for f in fields(owner)]
        close = difflib.get_close_matches(leaf, names, n=3, cutoff=0.5)
        prefix = "".join(f"{k}." for k in (where, *parents) if k)
        hint = f"did you mean {' or '.join(prefix + c for c in close)}?" if close else f"expected one of {names}"
        what = f"{'an' if where[:1] in 'aeiou' else 'a'} {where} option" if where else "an option"
        raise ConfigError(f"{prefix}{leaf} is not {what}; {hint}") from None
    except OmegaConfBaseException as err:
        key = ".".join(k for k in (where, str(getattr(err, "full_key", None) or "")) if k) or "config"
        raise ConfigError(f"{key}: {str(err).splitlines()[0]}") from None
    validate(cfg, where)
    return cfg
