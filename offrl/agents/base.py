"""The agent interface every algorithm implements.

An agent owns its networks and optimisers and knows its update rule; it knows nothing of files,
loggers, Hydra or the environment loop. Observations reaching ``update`` and ``act`` are already
normalised by the trainer; actions live in [-1, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.optim.adam import adam as functional_adam

from offrl.data.store import Batch, TransitionStore


@dataclass
class AgentConfig:
    name: str = "?"
    hidden_dims: list[int] = field(default_factory=lambda: [256, 256])
    normalize_states: bool = True  # standardise states with dataset statistics (TD3+BC convention)


class Agent(nn.Module):
    config_class: ClassVar[type[AgentConfig]] = AgentConfig
    # The captured regions: methods holding all the tensor work of an update, optimiser steps included,
    # with no host syncs and no Python-side state changes (counters, schedules and host-side searches
    # stay in ``update``, around them). ``enable_compile`` wraps each in torch.compile, and one update
    # runs one compiled graph: ``iteration``, or with the UTD schedule ``critic_step`` and ``policy_step``
    # (tests/test_compile.py counts the graphs of every agent).
    compiled_methods: ClassVar[tuple[str, ...]] = ("iteration",)
    # std of the Gaussian that ``log_prob`` puts around a deterministic actor's action (PGD's
    # det_guidance, card C.8: a unit Gaussian); an instance may set its own.
    log_prob_std: float = 1.0
    # True: the update is written for a leading seed axis (losses reduced over the trailing batch dims
    # only, noise from noise_like), so offrl.seeds.stack_agents can train K seeds in one process.
    seed_axis: ClassVar[bool] = False
    # True: the policy's loss reads ``Batch.actor_obs``, so a batch source may give the policy observations
    # of its own (goal relabelling's ``dataset.relabel.policy``: the policy's goals apart from the values')
    policy_goals: ClassVar[bool] = False

    def __init__(self, cfg: AgentConfig, obs_dim: int, act_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.num_updates = 0  # python-side counter (saved through get_extra_state)
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.num_seeds: int | None = None  # K with a leading seed axis (offrl.seeds), None for one agent
        # the agent's own noise stream(s), seeded from the global generator at construction (one per seed)
        self.noise_seeds = [int(torch.randint(2**62, (), device="cpu"))]
        self._noise: list[torch.Generator] | None = None

    def update(self, batch: Batch) -> dict[str, Tensor]:
        """One training iteration on ``batch``; returns detached tensors, no host sync (scalars; with a seed
        axis, one value per seed).
        Default: ``before_update``, ``iteration`` (the captured tensor work), then the update counter."""
        self.before_update()
        metrics = self.iteration(batch)
        self.num_updates += 1
        return metrics

    def iteration(self, batch: Batch) -> dict[str, Tensor]:
        """All the tensor work of one update, optimiser steps included: the region ``enable_compile``
        captures whole. Default: the one-minibatch case of the UTD schedule, critic_step then policy_step."""
        metrics = self.critic_step(batch)
        metrics.update(self.policy_step(batch))
        return metrics

    def act(self, obs: Tensor, deterministic: bool = True) -> Tensor:
        """Actions in [-1, 1] for a batch of (normalised) observations."""
        raise NotImplementedError

    # The UTD schedule (trainer.utd > 1, RLPD/EXPO) sequences the two parts of an update: the critic part
    # on each of utd minibatches, the policy part (actor, temperature, ...) once. Agents that can be split
    # so define critic_step and policy_step (captured regions); critic_update and policy_update are the
    # schedule's calls, with the Python-side bookkeeping.
    def before_update(self) -> None:
        """Python-side bookkeeping before the captured region of an update (lr schedules: change tensor lrs
        in place, so the compiled graph is reused). Default: nothing."""

    def critic_step(self, batch: Batch) -> dict[str, Tensor]:
        raise NotImplementedError

    def policy_step(self, batch: Batch) -> dict[str, Tensor]:
        raise NotImplementedError

    def critic_update(self, batch: Batch) -> dict[str, Tensor]:
        return self.critic_step(batch)

    def policy_update(self, batch: Batch) -> dict[str, Tensor]:
        self.before_update()
        metrics = self.policy_step(batch)
        self.num_updates += 1
        return metrics

    def supports_utd(self) -> bool:
        cls = type(self)
        return cls.critic_step is not Agent.critic_step and cls.policy_step is not Agent.policy_step

    def pretrain_update(self, batch: Batch) -> dict[str, Tensor]:
        """The update of offline pre-training before an online phase (trainer=offline_to_online).
        Default: the ordinary update; an agent that pre-trains only some networks overrides it."""
        return self.update(batch)

    def log_prob(self, obs: Tensor, actions: Tensor) -> Tensor:
        """log pi(a|s) for a batch of (normalised) observations and actions, shape (B,), differentiable
        in ``actions`` (policy-guided diffusion steers sampled actions along its gradient). Default, for
        deterministic actors: the density of N(act(obs), log_prob_std^2 I), whose gradient in the actions
        is (act(obs) - a) / std^2. Stochastic agents override this with their policy's own density."""
        mean = self.act(obs, deterministic=True)
        std = self.log_prob_std
        return (-0.5 * ((actions - mean) / std) ** 2 - math.log(std) - 0.5 * math.log(2 * math.pi)).sum(-1)

    def deterministic_policy(self) -> nn.Module:
        """The deterministic policy as a module of its own, for export (``offrl export`` traces it):
        forward(obs) maps a batch of normalised observations (B, obs_dim) to the actions in [-1, 1] of
        ``act(obs, deterministic=True)``, sharing this agent's parameters. Default: a module calling
        ``act``, traceable when ``act`` is tensor operations whose Python control flow depends on the
        config only (not on the data or the batch size); an agent whose ``act`` is not overrides this."""
        return _DeterministicAct(self)

    def attach_dataset(self, store: TransitionStore) -> None:
        """Called once before training with the (normalised) offline data, for agents whose update
        needs the whole dataset (e.g. PRDC's nearest-neighbour search). Default: nothing."""

    def noise_like(self, x: Tensor, last_dim: int | None = None) -> Tensor:
        """Standard normal noise shaped like ``x`` (its last dim replaced by ``last_dim`` if given) from the
        agent's own stream, one stream per seed with a seed axis (so seed k draws what it would draw
        alone). Drawn outside the captured region."""
        if self._noise is None:
            self._noise = [torch.Generator(x.device).manual_seed(s) for s in self.noise_seeds]
        shape = x.shape if last_dim is None else (*x.shape[:-1], last_dim)
        if self.num_seeds is None:
            return torch.randn(shape, generator=self._noise[0], device=x.device, dtype=x.dtype)
        return torch.stack([torch.randn(shape[1:], generator=g, device=x.device, dtype=x.dtype)
                            for g in self._noise])

    def reset_noise(self) -> None:
        self._noise = None

    def optimize(self, name: str, loss: Tensor) -> None:
        """One step of optimiser ``name`` on ``loss``: gradients reach only that optimiser's parameters.
        With a seed axis ``loss`` holds one loss per seed; their sum has each seed's gradient."""
        loss.sum().backward(inputs=_parameters(self.optimizers[name]))
        self.apply_gradients(name)

    def apply_gradients(self, name: str) -> None:
        """Step optimiser ``name`` on the gradients in its parameters' ``.grad``, then clear them (after the
        step rather than before the backward: that order stays inside one captured graph)."""
        opt = self.optimizers[name]
        opt.step()
        for p in _parameters(opt):
            p.grad = None

    def enable_compile(self, **options: Any) -> None:
        """torch.compile each captured region (``options`` go to torch.compile: mode="reduce-overhead" adds
        CUDA graphs on a GPU). Dynamo traces backward and autograd.grad inside the graph only with
        ``trace_autograd_ops``, a process-wide switch this turns on."""
        torch._dynamo.config.trace_autograd_ops = True
        for name in self.compiled_methods:
            setattr(self, name, torch.compile(getattr(self, name), **options))

    def get_extra_state(self) -> dict[str, Any]:
        return {"num_updates": self.num_updates, "noise_seeds": self.noise_seeds,
                "noise_states": None if self._noise is None else [g.get_state() for g in self._noise]}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.num_updates = state["num_updates"]
        self.noise_seeds = state.get("noise_seeds", self.noise_seeds)
        self._noise = None
        if state.get("noise_states") is not None:
            device = next(self.parameters()).device
            self._noise = [torch.Generator(device).manual_seed(0) for _ in state["noise_states"]]
            for g, s in zip(self._noise, state["noise_states"]):
                g.set_state(s)

    def optimizer_state(self) -> dict[str, Any]:
        return {name: opt.state_dict() for name, opt in self.optimizers.items()}

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state[name])


class _DeterministicAct(nn.Module):
    """``agent.act(obs, deterministic=True)`` as a module (Agent.deterministic_policy's default)."""

    def __init__(self, agent: Agent) -> None:
        super().__init__()
        self.agent = agent

    def forward(self, obs: Tensor) -> Tensor:
        return self.agent.act(obs, deterministic=True)


def _parameters(opt: torch.optim.Optimizer) -> list[Tensor]:
    return [p for group in opt.param_groups for p in group["params"]]


class Adam(torch.optim.Adam):
    """torch's Adam (the same state, state_dict and fused kernel) with a ``step`` that torch.compile
    captures inside a larger graph: torch wraps ``Optimizer.step`` in deliberate graph breaks
    (pytorch/pytorch#104053) and initialises state lazily, which breaks the graph again after a traced
    backward; this one initialises its state at construction and calls the functional ``adam`` directly.
    ``decoupled_weight_decay=True`` makes it AdamW."""

    def __init__(self, params: Any, **kwargs: Any) -> None:
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
            functional_adam(
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
