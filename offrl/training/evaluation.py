"""What the trainer trains (a ``Learner``: every agent, the trajectory diffusion model) and how it measures it
(an ``Evaluation``: an agent's episodes on its environment; a trajectory model's validation loss)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from offrl.agents.base import Agent
from offrl.core.errors import ConfigError
from offrl.data.arrays import DatasetInfo
from offrl.data.store import ObsNormalizer
from offrl.envs import evaluate, make_vec_env


class Learner(Protocol):
    """What the trainer trains: every agent (``offrl.agents.base.Agent``) and the trajectory diffusion model
    (``offrl.diffusion.trajectory.TrajectoryLearner``). ``update`` takes a batch of its source and returns
    detached metric tensors; ``artifacts`` are files (name -> state) it publishes beside each checkpoint. The
    schedules only agents run (online phases, ``trainer.utd`` > 1, offline pre-training) also use the agent's
    ``act``, ``supports_utd``/``critic_update``/``policy_update`` and ``pretrain_update``."""

    name: str
    obs_dim: int
    act_dim: int

    def parameters(self) -> Iterator[nn.Parameter]: ...
    def update(self, batch: Any) -> dict[str, Tensor]: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> Any: ...
    def optimizer_state(self) -> dict[str, Any]: ...
    def load_optimizer_state(self, state: dict[str, Any]) -> None: ...
    def artifacts(self) -> dict[str, dict[str, Any]]: ...


class Evaluation(Protocol):
    """How the trainer measures a learner at each evaluation: ``measure`` gives the entry's numbers, ``score``
    orders entries (the best one is kept as checkpoints/best.pt), ``describe`` is the console text and
    ``summary`` what results.json reports of the last entry."""

    def measure(self, learner: Any, seed: int) -> dict[str, float]: ...
    def score(self, entry: dict[str, Any]) -> float: ...
    def describe(self, entry: dict[str, Any]) -> str: ...
    def summary(self, last: dict[str, Any]) -> dict[str, Any]: ...
    def close(self) -> None: ...


class EnvEvaluation:
    """An agent's evaluation: ``eval_episodes`` episodes of its deterministic policy on the evaluation env
    (seeds ``seed + 100 + i`` for a member of seed ``seed``); return, normalised score, success rate."""

    def __init__(self, episodes: int, eval_envs: int, info: DatasetInfo, normalizer: ObsNormalizer,
                 device: torch.device) -> None:
        if info.env_id is None:
            raise ConfigError(
                f"no environment to evaluate on: dataset '{info.name}' names none; set env=<gymnasium id>"
            )
        self.episodes, self.info, self.normalizer, self.device = episodes, info, normalizer, device
        self.envs = make_vec_env(info.env_id, min(eval_envs, episodes), info.env_kwargs)

    def measure(self, agent: Agent, seed: int) -> dict[str, float]:
        @torch.no_grad()
        def act(obs: np.ndarray) -> np.ndarray:
            obs_t = self.normalizer(torch.as_tensor(obs, dtype=torch.float32, device=self.device))
            return agent.act(obs_t, deterministic=True).cpu().numpy()

        result = evaluate(act, self.envs, self.episodes, seed=seed + 100)
        entry = {"return_mean": result.return_mean, "return_std": result.return_std,
                 "length_mean": float(result.lengths.mean())}
        score = self.info.normalized_score(result.return_mean)
        if score is not None:
            entry["normalized_score"] = score
        if result.success_rate is not None:
            entry["success_rate"] = result.success_rate
        return entry

    def score(self, entry: dict[str, Any]) -> float:
        return entry["return_mean"]

    def describe(self, entry: dict[str, Any]) -> str:
        shown = f"return {entry['return_mean']:.1f} +- {entry['return_std']:.1f}"
        if "normalized_score" in entry:
            shown += f", normalized score {entry['normalized_score']:.1f}"
        if "success_rate" in entry:
            shown += f", success rate {entry['success_rate']:.2f}"
        return shown

    def summary(self, last: dict[str, Any]) -> dict[str, Any]:
        return {"normalized_score": last.get("normalized_score"), "success_rate": last.get("success_rate"),
                "return_mean": last["return_mean"], "return_std": last["return_std"],
                "eval_episodes": self.episodes, "ref_min_score": self.info.ref_min_score,
                "ref_max_score": self.info.ref_max_score}

    def close(self) -> None:
        self.envs.close()
