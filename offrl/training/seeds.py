"""Many seeds in one process: K independent agents as one agent whose every network has a leading seed axis.

``stack_agents(agents)`` takes K agents of one class and config (each built after its own
``torch.manual_seed``, so each starts exactly as it would alone) and returns one agent of that class whose
``nn.Linear`` layers are ``SeedLinear`` (weights (K, in, out)), whose ensemble layers carry weights
(K, n, in, out), and whose optimisers hold the stacked parameters (one Adam over a stacked tensor is K
independent Adams: its arithmetic is elementwise). It trains on stacked batches (K, B, ...) (one per seed,
``stack_batches``): the agents' losses reduce over the trailing batch dims only, per seed, so per-seed
statistics (TD3+BC's lambda) stay per seed, and ``Agent.optimize`` sums the K losses, whose gradients do
not mix; noise comes from each seed's own generator. Metrics come back per seed, shape (K,).
The agents are stacked before training (their optimiser state is not carried over).
``seed_state_dict(stacked, k, lone)`` is seed k's state dict in the layout of a lone agent (for evaluation and
checkpoints); ``SeedView`` keeps a lone agent in step with seed k. Agents opt in with ``Agent.seed_axis = True``
(their update written for it). ``offrl train seeds=[...]`` (offrl.training.run) trains a stack with
``SeedBatches`` as its batch source and one ``trainer.Member`` per seed.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from offrl.agents.base import Agent
from offrl.core.errors import ConfigError
from offrl.core.nets import EnsembleLinear, EnsembleMLP, GaussianActor, SeedLinear
from offrl.core.optim import adam
from offrl.data.store import Batch, combine


def stack_agents(agents: Sequence[Agent]) -> Agent:
    """One agent training all of ``agents`` at once (see the module docstring)."""
    first = agents[0]
    if not first.seed_axis:
        raise ConfigError(f"agent '{first.cfg.name}' cannot train several seeds in one process (no seed axis)")
    if any(type(a) is not type(first) or a.cfg != first.cfg for a in agents):
        raise ConfigError("stack_agents needs agents of one class and one config")
    if any(a.num_updates for a in agents):  # their optimiser state would be lost: the stack starts fresh
        raise ConfigError("stack_agents stacks agents before training (their optimiser state is not carried)")
    stacked = copy.deepcopy(first)
    modules = [dict(a.named_modules()) for a in agents]
    for name, module in list(stacked.named_modules()):
        parts = [m[name] for m in modules]
        if isinstance(module, nn.Linear):
            layer = SeedLinear(parts)
            layer.requires_grad_(module.weight.requires_grad)
            parent, _, attr = name.rpartition(".")
            setattr(stacked.get_submodule(parent), attr, layer)
        elif isinstance(module, (EnsembleLinear, EnsembleMLP, GaussianActor)):
            for pname, param in module.named_parameters(recurse=False):
                values = [dict(p.named_parameters(recurse=False))[pname].detach() for p in parts]
                value = torch.stack(values)
                if isinstance(module, GaussianActor):  # log_std (A,) broadcasts over the batch: (K, 1, A)
                    value = value[:, None]
                setattr(module, pname, nn.Parameter(value, requires_grad=param.requires_grad))
        elif isinstance(module, nn.ParameterList):
            for i, param in enumerate(module):
                module[i] = nn.Parameter(torch.stack([m[name][i].detach() for m in modules]),
                                         requires_grad=param.requires_grad)
        elif any(True for _ in module.parameters(recurse=False)):
            raise ConfigError(f"stack_agents: {type(module).__name__} '{name}' has parameters it cannot stack")
    stacked.optimizers = {key: _restacked(first, stacked, opt) for key, opt in first.optimizers.items()}
    stacked.num_seeds = len(agents)
    stacked.noise_seeds = [s for a in agents for s in a.noise_seeds]
    stacked.reset_noise()
    return stacked


def _restacked(lone: Agent, stacked: Agent, opt: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """An optimiser of ``opt``'s kind and hyperparameters over the stacked counterparts of its parameters."""
    names = {id(p): n for n, p in lone.named_parameters()}
    params = dict(stacked.named_parameters())
    (group,) = opt.param_groups
    hyper = {k: (v.clone() if isinstance(v, Tensor) else v) for k, v in group.items()
             if k in ("lr", "betas", "eps", "weight_decay", "decoupled_weight_decay", "amsgrad", "maximize")}
    return adam([params[names[id(p)]] for p in group["params"]], **hyper)


def stack_batches(batches: Sequence[Batch]) -> Batch:
    """K batches (one per seed) as one batch with a leading seed axis."""
    return combine(batches, torch.stack)


def seed_state_dict(stacked: Agent, k: int, lone: Agent) -> dict[str, Tensor]:
    """Seed ``k``'s parameters and buffers in the layout of ``lone`` (an agent of the same class and config)."""
    modules = dict(stacked.named_modules())
    state = {}
    for name, value in lone.state_dict().items():
        if name.endswith("_extra_state"):
            continue
        owner, _, attr = name.rpartition(".")
        module = modules[owner]
        part = getattr(module, attr) if not isinstance(module, nn.ParameterList) else module[int(attr)]
        part = part.detach()[k]
        if isinstance(module, SeedLinear) and attr == "weight":
            part = part.T
        elif isinstance(module, SeedLinear):
            part = part[0]
        elif isinstance(module, GaussianActor):
            part = part[0]
        state[name] = part.reshape(value.shape).clone()
    return state


class SeedBatches:
    """Batches of one store for K seeds at once, (K, B, ...): seed k's rows come from its own generator,
    seeded as a lone run's store sampler with that seed (``TransitionStore(..., seed=k)``) draws them.
    A batch source (``offrl.data.batches.BatchSource``): its checkpoint state is the K generators."""

    def __init__(self, store, seeds: Sequence[int]) -> None:
        self.store = store
        self.generators = [torch.Generator(device=store.device).manual_seed(s) for s in seeds]

    def __len__(self) -> int:
        return len(self.store)

    def sample(self, batch_size: int) -> Batch:
        s = self.store
        index = torch.stack([torch.randint(0, s.size, (batch_size,), device=s.device, generator=g)
                             for g in self.generators])
        return s.rows(index)

    def refresh(self, agent_step: int) -> None:
        pass

    def state_dict(self) -> dict:
        return {"generators": [g.get_state() for g in self.generators]}

    def load_state_dict(self, state: dict) -> None:
        for g, saved in zip(self.generators, state["generators"], strict=True):
            g.set_state(saved)


class SeedView:
    """Seed ``k`` of a stack as a lone agent (``lone``: an agent of the stack's class and config, which this
    view owns), brought up to date with the stack on each call: what the trainer evaluates and saves for
    that seed, loadable by everything that loads a lone run's agent."""

    def __init__(self, stacked: Agent, k: int, lone: Agent) -> None:
        self.stacked, self.k, self.lone = stacked, k, lone

    def __call__(self) -> Agent:
        self.lone.load_state_dict({**self.lone.state_dict(), **seed_state_dict(self.stacked, self.k, self.lone)})
        self.lone.num_updates = self.stacked.num_updates
        return self.lone
