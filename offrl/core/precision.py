"""What a run computes in: ``precision=fp32 | tf32 | bf16`` (``auto`` is resolved to one of them by
``offrl.core.runtime.resolve_precision``).

bf16 is mixed precision: the trainer runs each update under ``torch.autocast(dtype=torch.bfloat16)``, so matrix
products (forward and backward) and the activations between them are bf16, while everything else stays fp32:

* parameters (master weights), their gradients and the optimiser state: autocast casts a weight to bf16 where a
  matmul reads it and the gradient back to fp32, and never changes a parameter's dtype; checkpoints and exports
  are fp32;
* the output layer of every network (``keep_outputs_fp32``): Q-values, values, action means and log-stds come out
  of an fp32 layer, so TD targets, losses and every reduction over them are fp32 (bf16 keeps 8 bits of mantissa:
  a value of 300 would be rounded to a multiple of 2, as large as a TD error; benchmarks/results/precision.md);
* metrics are returned as fp32; acting and evaluation run in fp32 (no autocast), so scores compare with fp32 runs.

tf32 (CUDA, Ampere or newer) keeps fp32 tensors and lets fp32 matmuls use the tensor cores' TF32 mode.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from offrl.core.nets import EnsembleMLP

PRECISIONS = ("fp32", "bf16", "tf32", "auto")  # the values of precision=...; fp32 the default


@dataclass(frozen=True)
class Precision:
    """A resolved precision (``name``: fp32, tf32 or bf16) on a device type (cpu, cuda, mps)."""

    name: str = "fp32"
    device_type: str = "cpu"

    @property
    def bf16(self) -> bool:
        return self.name == "bf16"

    def prepare(self, agent: nn.Module) -> None:
        """Before training (and before ``enable_compile``): on CUDA, TF32 on or off for fp32 matmuls (process-wide;
        convolutions keep cuDNN's own setting), and with bf16 the output layers of ``agent``'s networks kept fp32
        (``keep_outputs_fp32``)."""
        if self.device_type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = self.name == "tf32"
        if self.bf16:
            keep_outputs_fp32(agent)

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context an update runs in: bf16 autocast, or nothing. Without autocast's cache of weight casts: an
        update steps optimisers inside the context (TD3's critic step before its actor step, the UTD schedule's
        critic steps one after another), and a cached bf16 copy would keep a weight's value from before the step."""
        if self.bf16:
            return torch.autocast(self.device_type, dtype=torch.bfloat16, cache_enabled=False)
        return contextlib.nullcontext()


def fp32_metrics(metrics: dict[str, Tensor]) -> dict[str, Tensor]:
    """``metrics`` with any lower-precision floating tensor cast to fp32 (those already fp32 are not copied)."""
    return {key: value.float() if isinstance(value, Tensor) and value.is_floating_point()
            and value.dtype != torch.float32 else value for key, value in metrics.items()}


class _Fp32Output:
    """Mixin of an output layer: under autocast it computes in fp32 (its input cast up, autocast off)."""

    def forward(self, x: Tensor, *args, **kwargs) -> Tensor:
        if not torch.is_autocast_enabled(x.device.type):
            return super().forward(x, *args, **kwargs)
        with torch.autocast(x.device.type, enabled=False):
            return super().forward(x.float(), *args, **kwargs)


_FP32_CLASSES: dict[type, type] = {}


def _fp32_class(cls: type) -> type:
    """``cls`` with the ``_Fp32Output`` forward, one class per layer class (named in this module, so a module
    holding one still pickles and deep-copies)."""
    if issubclass(cls, _Fp32Output):
        return cls
    if cls not in _FP32_CLASSES:
        name = f"Fp32Output{cls.__name__}"
        made = type(name, (_Fp32Output, cls), {"__module__": __name__, "__qualname__": name})
        globals()[name] = made
        _FP32_CLASSES[cls] = made
    return _FP32_CLASSES[cls]


def output_layers(module: nn.Module) -> list[nn.Module]:
    """The output layer(s) of every network in ``module``: those a network names in its class attribute
    ``output_layers`` (a tuple of submodule names, e.g. a policy's separate heads; nothing else inside it counts),
    else the last child holding parameters of each ``nn.Sequential`` (``offrl.core.nets.mlp``'s output layer: an
    ``nn.Linear``, or a ``SeedLinear`` with a seed axis) and the last layer of each ``EnsembleMLP`` (critics,
    ensemble values)."""
    found: dict[int, nn.Module] = {}

    def visit(sub: nn.Module) -> None:
        named = getattr(type(sub), "output_layers", None)
        if isinstance(named, tuple):
            found.update((id(layer), layer) for layer in map(sub.get_submodule, named))
            return
        if isinstance(sub, EnsembleMLP):
            found[id(sub.layers[-1])] = sub.layers[-1]
            return
        if isinstance(sub, nn.Sequential):
            last = next((child for child in reversed(sub) if any(True for _ in child.parameters())), None)
            if last is not None and next(last.children(), None) is None:  # a layer, not a block of layers
                found[id(last)] = last
        for child in sub.children():
            visit(child)

    visit(module)
    return list(found.values())


def keep_outputs_fp32(module: nn.Module) -> list[nn.Module]:
    """Make each of ``output_layers(module)`` compute in fp32 under autocast (its class becomes a subclass with that
    forward: same parameters, same state_dict keys; without autocast it computes as before); returns them. A small
    share of the FLOPs (one output column, or the action's few), and the values a TD target, a loss or a log-density
    reads keep fp32's 24 bits of mantissa rather than bf16's 8."""
    layers = output_layers(module)
    for layer in layers:
        layer.__class__ = _fp32_class(type(layer))
    return layers


def is_fp32_output(layer: nn.Module) -> bool:
    return isinstance(layer, _Fp32Output)
