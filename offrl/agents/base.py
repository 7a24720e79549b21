"""The agent interface every algorithm implements.

An agent owns its networks and optimisers and knows its update rule; it knows nothing of files,
loggers, Hydra or the environment loop. Observations reaching ``update`` and ``act`` are already
normalised by the trainer; actions live in [-1, 1].

The contract is the same for every agent: an override of an ``Agent`` method keeps its parameters
(tests/test_agent_contract.py). One update is

    before_update()                    Python-side bookkeeping (lr schedules)
    inputs = prepare(batch)            host-side work: noise draws, searches, decisions by the update count
    metrics = iteration(batch, inputs) the captured region: all the tensor work, optimiser steps included
    num_updates += 1

and the UTD schedule splits ``iteration`` into ``critic_step`` (on each minibatch) and ``policy_step``
(once), for agents that define both and need no ``inputs``. Optimisers come from ``offrl.core.optim``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from offrl.core.config import widths
from offrl.data.store import Batch, TransitionStore


@dataclass
class AgentConfig:
    name: str = "?"  # the agent's registry name: agent=<name> (offrl.agents.AGENTS)
    hidden_dims: list[int] = widths([256, 256])  # hidden layer widths of the MLPs
    normalize_states: bool = True  # standardise states with dataset statistics (TD3+BC convention)


class Agent(nn.Module):
    config_class: ClassVar[type[AgentConfig]] = AgentConfig
    # The captured regions: methods holding all the tensor work of an update, optimiser steps included,
    # with no host syncs and no Python-side state changes (counters, schedules, noise draws and host-side
    # searches stay in ``before_update`` and ``prepare``, around them). ``enable_compile`` wraps each in
    # torch.compile, and one update runs one compiled graph: ``iteration``, or with the UTD schedule
    # ``critic_step`` and ``policy_step`` (tests/test_compile.py counts the graphs of every agent).
    compiled_methods: ClassVar[tuple[str, ...]] = ("iteration",)
    # std of the Gaussian that ``log_prob`` puts around a deterministic actor's action (PGD's
    # det_guidance: a unit Gaussian; docs/algorithms/pgd.md#implementation-notes); an instance may set its own.
    log_prob_std: float = 1.0
    # True: the update is written for a leading seed axis (losses reduced over the trailing batch dims
    # only, noise from noise_like), so offrl.training.seeds.stack_agents can train K seeds in one process.
    seed_axis: ClassVar[bool] = False
    # True: the policy's loss reads ``Batch.actor_obs``, so a batch source may give the policy observations
    # of its own (goal relabelling's ``dataset.relabel.policy``: the policy's goals apart from the values')
    policy_goals: ClassVar[bool] = False
    # True: the update evaluates dataset actions where only [-1, 1] exists (a tanh-squashed density, a clipped
    # sampler), so a dataset whose actions exceed the env's bounds is refused rather than silently clipped
    needs_actions_in_bounds: ClassVar[bool] = False
    # Batch columns beyond the transition that the update reads (names of offrl.data.store.COLUMNS, e.g. ReBRAC's
    # "next_actions", Cal-QL's "returns", made at the config's ``discount``): the offline store holds them for this
    # agent, an online replay those of REPLAY_COLUMNS, and a run whose batches cannot carry them (no dataset, online
    # phases for the others, synthetic data) is refused before it starts
    dataset_columns: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: AgentConfig, obs_dim: int, act_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.num_updates = 0  # python-side counter (saved through get_extra_state)
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.num_seeds: int | None = None  # K with a leading seed axis (offrl.training.seeds), None for one agent
        # the agent's own noise stream(s), seeded from the global generator at construction (one per seed)
        self.noise_seeds = [int(torch.randint(2**62, (), device="cpu"))]
        self._noise: list[torch.Generator] | None = None

    def update(self, batch: Batch) -> dict[str, Tensor]:
        """One training iteration on ``batch``; returns detached tensors, no host sync (scalars; with a seed
        axis, one value per seed): ``before_update``, ``prepare``, ``iteration`` (the captured tensor work),
        the update counter; the metrics of ``iteration`` and then the ``host_metrics``."""
        self.before_update()
        inputs = self.prepare(batch)
        metrics = self.iteration(batch, inputs)
        self.num_updates += 1
        return {**metrics, **self.host_metrics()}

    def prepare(self, batch: Batch) -> dict[str, Tensor]:
        """The host-side work of the coming update (update number ``num_updates + 1``), before its captured
        region: draws from the agent's noise stream (``noise_like``), searches on the host, decisions by the
        update count. Returns the tensors ``iteration`` takes; a key present or absent selects a variant of the
        region (one compiled graph each). Default: none."""
        return {}

    def iteration(self, batch: Batch, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """All the tensor work of one update on ``batch`` and the ``inputs`` of ``prepare``, optimiser steps
        included: the region ``enable_compile`` captures whole. Default: the one-minibatch case of the UTD
        schedule, critic_step then policy_step (which take no inputs)."""
        metrics = self.critic_step(batch)
        metrics.update(self.policy_step(batch))
        return metrics

    def host_metrics(self) -> dict[str, Tensor]:
        """Diagnostics computed outside the captured regions (in ``prepare`` or ``act``), logged with the
        metrics of ``update`` and ``policy_update``. Default: none."""
        return {}

    @property
    def name(self) -> str:
        """The agent's registry name (``agent=NAME``)."""
        return self.cfg.name

    def artifacts(self) -> dict[str, dict[str, Any]]:
        """Files (name -> state) to publish beside each checkpoint of the run. Default: none; an agent's policy
        is read from the checkpoint itself (offrl eval, export)."""
        return {}

    def act(self, obs: Tensor, deterministic: bool = True) -> Tensor:
        """Actions in [-1, 1] for a batch of (normalised) observations."""
        raise NotImplementedError

    # The UTD schedule (trainer.utd > 1, RLPD/EXPO) sequences the two parts of an update: the critic part
    # on each of utd minibatches, the policy part (actor, temperature, ...) once. Agents that can be split
    # so define critic_step and policy_step (captured regions, with no ``prepare``d inputs); critic_update
    # and policy_update are the schedule's calls, with the Python-side bookkeeping.
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
        return {**metrics, **self.host_metrics()}

    def supports_utd(self) -> bool:
        """Whether the UTD schedule can run: the agent defines both critic_step and policy_step."""
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

