"""Adam that torch.compile captures inside a larger graph: an agent's whole update, optimiser steps included.

torch's own ``torch.optim.Adam`` cannot be captured so (torch 2.13: one to two graph breaks per step): torch
wraps ``Optimizer.step`` in deliberate graph breaks (pytorch/pytorch#104053) and initialises the state lazily,
on the first step, which breaks the graph again after a traced backward. ``Adam`` here is torch's Adam (the
same state, state_dict and fused kernel) whose state is initialised at construction, by torch's own
``Adam._init_group``, and whose ``step`` calls the functional ``torch.optim.adam.adam`` directly.

``_init_group`` is private torch API and the functional ``adam``'s keywords change between releases: this
module is the one place offrl relies on them, and ``check_torch_api`` (run by every ``Adam``) says so by name
when a torch release changes them (tests/test_agent_contract.py checks the state and the arithmetic).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.optim.adam as torch_adam
from torch import Tensor, nn

# Adam._init_group(group, params_with_grad, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps)
INIT_GROUP_PARAMETERS = ("self", "group", "params_with_grad", "grads", "exp_avgs", "exp_avg_sqs",
                         "max_exp_avg_sqs", "state_steps")
# the keywords ``Adam.step`` passes to the functional torch.optim.adam.adam
ADAM_KEYWORDS = ("amsgrad", "beta1", "beta2", "lr", "weight_decay", "eps", "maximize", "foreach", "capturable",
                 "differentiable", "fused", "decoupled_weight_decay")


class TorchAPIError(RuntimeError):
    """The installed torch changed the private optimiser API this module relies on."""


def check_torch_api() -> None:
    """Raise ``TorchAPIError`` unless ``torch.optim.Adam._init_group`` and ``torch.optim.adam.adam`` have the
    parameters this module calls them with."""
    init_group = getattr(torch.optim.Adam, "_init_group", None)
    found = None if init_group is None else tuple(inspect.signature(init_group).parameters)
    functional = getattr(torch_adam, "adam", None)
    missing = [k for k in ADAM_KEYWORDS if functional is None or k not in inspect.signature(functional).parameters]
    if found != INIT_GROUP_PARAMETERS or missing:
        problem = (f"torch.optim.Adam._init_group has parameters {found}, expected {INIT_GROUP_PARAMETERS}"
                   if found != INIT_GROUP_PARAMETERS else f"torch.optim.adam.adam lacks the keywords {missing}")
        raise TorchAPIError(f"torch {torch.__version__} changed the private API offrl.core.optim relies on "
                            f"({problem}; written against torch 2.13): offrl.core.optim.Adam needs updating")


class Adam(torch.optim.Adam):
    """torch's Adam with its state built at construction and a ``step`` that torch.compile captures (see the
    module docstring). ``decoupled_weight_decay=True`` makes it AdamW."""

    def __init__(self, params: Any, **kwargs: Any) -> None:
        check_torch_api()
        super().__init__(params, **kwargs)
        for group in self.param_groups:  # torch's own state initialisation, run once here on zero gradients
            for p in group["params"]:
                p.grad = torch.zeros_like(p)
            self._init_group(group, [], [], [], [], [], [])
            for p in group["params"]:
                p.grad = None

    @torch.no_grad()
    def step(self) -> None:  # type: ignore[override]  # no closure
        compiling = torch.compiler.is_compiling()  # dynamo does not trace the fused kernel: the same
        # arithmetic as foreach ops, which inductor fuses itself
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            states = [self.state[p] for p in params]
            beta1, beta2 = group["betas"]
            torch_adam.adam(
                params, [p.grad for p in params], [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
                [s["max_exp_avg_sq"] for s in states] if group["amsgrad"] else [], [s["step"] for s in states],
                amsgrad=group["amsgrad"], beta1=beta1, beta2=beta2, lr=group["lr"],
                weight_decay=group["weight_decay"], eps=group["eps"], maximize=group["maximize"],
                foreach=group["foreach"] or compiling, capturable=group["capturable"],
                differentiable=group["differentiable"], fused=group["fused"] and not compiling,
                decoupled_weight_decay=group["decoupled_weight_decay"])


def adam(params: nn.Module | list[Tensor], lr: float | Tensor, **kwargs: Any) -> Adam:
    """Adam with the fused kernel (one kernel for all parameters, on CPU and CUDA), capturable inside a
    compiled update (and, on a GPU, inside a CUDA graph: capturable state). A tensor ``lr`` can change
    (``fill_``) without recompiling."""
    params = list(params.parameters() if isinstance(params, nn.Module) else params)
    return Adam(params, lr=lr, fused=True, capturable=params[0].is_cuda, **kwargs)
