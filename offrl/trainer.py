"""One training loop for every agent: offline (gradient steps), online and offline-to-online
(environment steps with warm-up and an updates-per-step ratio), with evaluation, TensorBoard
logging, atomic checkpoints and exact resume."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from offrl import checkpoint
from offrl.agents.base import Agent
from offrl.data.arrays import DatasetInfo
from offrl.data.store import ObsNormalizer, TransitionStore, sample_mixed
from offrl.envs import EvalResult, evaluate, make_vec_env
from offrl.errors import ConfigError, TrainingDiverged

MODES = ("offline", "online", "offline_to_online")


@dataclass
class TrainerConfig:
    mode: str = "offline"  # offline | online | offline_to_online
    steps: int = 1_000_000  # gradient steps (offline) or environment steps (online, offline_to_online)
    batch_size: int = 256
    eval_every: int = 5_000
    eval_episodes: int = 10
    eval_envs: int = 10  # vector-env width for evaluation
    log_every: int = 1_000
    checkpoint_every: int = 50_000
    # online and offline-to-online
    num_envs: int = 1
    warmup_steps: int = 10_000  # uniform-random environment steps before learning starts
    updates_per_step: float = 1.0  # gradient updates per environment step
    buffer_size: int = 1_000_000
    pretrain_steps: int = 0  # offline_to_online: offline gradient steps before going online
    offline_fraction: float = 0.5  # offline_to_online: share of each batch drawn from the dataset
    snapshot_policies: bool = False  # save the agent at every evaluation (snapshots/step_N.pt)

    def check(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"trainer.mode='{self.mode}' is unknown; expected one of {list(MODES)}")
        for key in ("steps", "batch_size", "eval_every", "eval_episodes", "eval_envs", "log_every",
                    "checkpoint_every", "num_envs", "buffer_size"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"trainer.{key}={getattr(self, key)} must be positive")
        if not 0.0 <= self.offline_fraction <= 1.0:
            raise ConfigError(f"trainer.offline_fraction={self.offline_fraction} must lie in [0, 1]")


class Logger:
    """TensorBoard scalars plus short console lines (written through tqdm so the bar survives)."""

    def __init__(self, run_dir: Path, purge_step: int | None) -> None:
        self.writer = SummaryWriter(str(run_dir / "tb"), purge_step=purge_step)

    def scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(f"{prefix}/{key}", value, step)

    def console(self, text: str) -> None:
        tqdm.write(text)

    def close(self) -> None:
        self.writer.close()


class Trainer:
    """Drives an agent. ``dataset`` is the offline store (None for purely online runs); evaluation and
    online interaction use ``env_id``; scores are normalised with ``info``'s reference returns."""

    def __init__(
        self,
        cfg: TrainerConfig,
        agent: Agent,
        run_dir: Path,
        seed: int,
        normalizer: ObsNormalizer,
        info: DatasetInfo,
        dataset: TransitionStore | None = None,
        run_config: dict[str, Any] | None = None,
    ) -> None:
        cfg.check()
        if cfg.mode != "online" and dataset is None:
            raise ConfigError(f"trainer.mode={cfg.mode} needs a dataset")
        if info.env_id is None:
            raise ConfigError(
                f"no environment to evaluate on: dataset '{info.name}' names none; set env=<gymnasium id>"
            )
        self.cfg, self.agent, self.run_dir, self.seed = cfg, agent, Path(run_dir), seed
        self.normalizer, self.info, self.dataset = normalizer, info, dataset
        self.run_config = run_config or {}
        self.device = next(agent.parameters()).device
        self.replay: TransitionStore | None = None
        self.eval_envs = make_vec_env(info.env_id, min(cfg.eval_envs, cfg.eval_episodes), info.env_kwargs)
        # progress counters, all saved in checkpoints
        self.offline_step = 0  # gradient steps taken in the offline phase
        self.env_step = 0  # environment steps taken online
        self.update_step = 0  # gradient steps in total
        self.eval_history: list[dict[str, float]] = []
        self.wall_s = 0.0
        self.update_s = 0.0  # time spent in sampling + updates, for updates/s
        self.online_s = 0.0  # online time once learning runs (evaluation excluded), for env steps/s
        self.online_steps = 0  # env steps taken in that time
        self.metrics: dict[str, Tensor] = {}
        self.checkpoint_path = self.run_dir / "checkpoints" / "last.pt"

    # ------------------------------------------------------------------ entry point
    def run(self, resume: bool = False) -> dict[str, Any]:
        if resume:
            self._restore(checkpoint.load(self.checkpoint_path))
        self.logger = Logger(self.run_dir, purge_step=self._progress() if resume else None)
        start = time.perf_counter() - self.wall_s
        self._clock = lambda: time.perf_counter() - start
        try:
            if self.cfg.mode == "offline":
                self._offline_phase(self.cfg.steps)
            elif self.cfg.mode == "online":
                self._online_phase()
            else:
                self._offline_phase(self.cfg.pretrain_steps)
                self._online_phase()
            if not self.eval_history or self.eval_history[-1]["step"] != self._progress():
                self._evaluate()
            self.wall_s = self._clock()
            self._save()
        finally:
            self.logger.close()
            self.eval_envs.close()
        return self._results()

    def _progress(self) -> int:
        """The step counter evaluations and checkpoints are indexed by."""
        return self.offline_step if self.cfg.mode == "offline" else self.env_step

    # ------------------------------------------------------------------ phases
    def _offline_phase(self, steps: int) -> None:
        with tqdm(total=steps, initial=self.offline_step, desc="offline", unit="step", mininterval=1.0) as bar:
            while self.offline_step < steps:
                tick = time.perf_counter()
                self.metrics.update(self.agent.update(self.dataset.sample(self.cfg.batch_size)))
                self.update_s += time.perf_counter() - tick
                self.offline_step += 1
                self.update_step += 1
                bar.update(1)
                if self.cfg.mode == "offline":
                    self._periodic(self.offline_step)

    def _online_phase(self) -> None:
        cfg = self.cfg
        envs = make_vec_env(self.info.env_id, cfg.num_envs, self.info.env_kwargs)
        act_dim = envs.single_action_space.shape[0]
        if self.replay is None:
            self.replay = TransitionStore(self.agent.obs_dim, act_dim, cfg.buffer_size, self.device, self.seed + 1)
        explore_rng = np.random.default_rng([self.seed, self.env_step])
        obs, _ = envs.reset(seed=self.seed + self.env_step)
        restarted = np.zeros(cfg.num_envs, bool)  # sub-envs whose next step() is an autoreset
        episode_return, finished_returns = np.zeros(cfg.num_envs), []
        update_debt = 0.0
        with tqdm(total=cfg.steps, initial=self.env_step, desc=cfg.mode, unit="env step", mininterval=1.0) as bar:
            while self.env_step < cfg.steps:
                tick = time.perf_counter()
                obs_t = self.normalizer(torch.as_tensor(obs, dtype=torch.float32, device=self.device))
                if self.env_step < cfg.warmup_steps and cfg.mode == "online":
                    actions = explore_rng.uniform(-1.0, 1.0, (cfg.num_envs, act_dim)).astype(np.float32)
                else:
                    actions = self.agent.act(obs_t, deterministic=False).cpu().numpy()
                next_obs, rewards, terminated, truncated, _ = envs.step(actions)
                valid = ~restarted  # an autoreset step carries no transition
                if valid.any():
                    next_t = self.normalizer(torch.as_tensor(next_obs[valid], dtype=torch.float32, device=self.device))
                    self.replay.add(obs_t[torch.as_tensor(valid, device=self.device)], actions[valid], rewards[valid],
                                    next_t, terminated[valid], (terminated | truncated)[valid])
                episode_return += np.where(valid, rewards, 0.0)
                restarted = terminated | truncated
                for k in np.flatnonzero(restarted):
                    finished_returns.append(episode_return[k])
                    episode_return[k] = 0.0
                obs = next_obs
                previous = self.env_step
                self.env_step += cfg.num_envs
                bar.update(cfg.num_envs)
                if self.env_step >= cfg.warmup_steps or cfg.mode == "offline_to_online":
                    update_debt += cfg.updates_per_step * cfg.num_envs
                    update_tick = time.perf_counter()
                    while update_debt >= 1.0:
                        batch = (self.replay.sample(cfg.batch_size) if self.dataset is None else
                                 sample_mixed(self.dataset, self.replay, cfg.batch_size, cfg.offline_fraction))
                        self.metrics.update(self.agent.update(batch))
                        self.update_step += 1
                        update_debt -= 1.0
                    now = time.perf_counter()
                    self.update_s += now - update_tick
                    self.online_s += now - tick  # env step + acting + updates, evaluation excluded
                    self.online_steps += cfg.num_envs
                if finished_returns and _crossed(previous, self.env_step, cfg.log_every):
                    self.logger.scalars("train", {"episode_return": float(np.mean(finished_returns))}, self.env_step)
                    finished_returns.clear()
                self._periodic(self.env_step, previous)
        envs.close()

    # ------------------------------------------------------------------ periodic work
    def _periodic(self, step: int, previous: int | None = None) -> None:
        previous = step - 1 if previous is None else previous
        if _crossed(previous, step, self.cfg.log_every) and self.metrics:
            self._log(step)
        if _crossed(previous, step, self.cfg.eval_every):
            self._evaluate()
        if _crossed(previous, step, self.cfg.checkpoint_every):
            self.wall_s = self._clock()
            self._save()

    def _log(self, step: int) -> None:
        values = {key: float(value) for key, value in self.metrics.items()}  # the one host sync per log
        self._check_finite(values, step)
        self.logger.scalars("train", values, step)
        if self.update_s > 0:
            self.logger.scalars("perf", {"updates_per_s": self.update_step / self.update_s}, step)
        if self.online_s > 0:
            self.logger.scalars("perf", {"env_steps_per_s": self.online_steps / self.online_s}, step)

    def _check_finite(self, values: dict[str, float], step: int) -> None:
        bad = {key: value for key, value in values.items() if not math.isfinite(value)}
        if bad:
            kept = self.checkpoint_path if self.checkpoint_path.exists() else "none written yet"
            raise TrainingDiverged(
                f"step {step}: non-finite training metric(s) {bad}; stopping. Last good checkpoint: {kept}"
            )

    def _evaluate(self) -> EvalResult:
        result = evaluate(self._policy, self.eval_envs, self.cfg.eval_episodes, seed=self.seed + 100)
        step = self._progress()
        entry = {"step": step, "return_mean": result.return_mean, "return_std": result.return_std,
                 "length_mean": float(result.lengths.mean())}
        score = self.info.normalized_score(result.return_mean)
        if score is not None:
            entry["normalized_score"] = score
        self.eval_history.append(entry)
        if self.cfg.snapshot_policies:
            checkpoint.save_atomic({"eval": entry, "agent": self.agent.state_dict(),
                                    "replay_rows": None if self.replay is None else len(self.replay),
                                    "normalizer": self.normalizer.state_dict(), "config": self.run_config},
                                   self.run_dir / "snapshots" / f"step_{step:08d}.pt")
        self.logger.scalars("eval", {k: v for k, v in entry.items() if k != "step"}, step)
        shown = f", normalized score {score:.1f}" if score is not None else ""
        self.logger.console(f"[eval] step {step}: return {result.return_mean:.1f} +- {result.return_std:.1f}{shown}")
        return result

    @torch.no_grad()
    def _policy(self, obs: np.ndarray) -> np.ndarray:
        obs_t = self.normalizer(torch.as_tensor(obs, dtype=torch.float32, device=self.device))
        return self.agent.act(obs_t, deterministic=True).cpu().numpy()

    # ------------------------------------------------------------------ checkpoints
    def _save(self) -> None:
        if self.metrics:
            self._check_finite({key: float(value) for key, value in self.metrics.items()}, self._progress())
        state = {
            "offline_step": self.offline_step,
            "env_step": self.env_step,
            "update_step": self.update_step,
            "wall_s": self.wall_s,
            "update_s": self.update_s,
            "online_s": self.online_s,
            "online_steps": self.online_steps,
            "agent": self.agent.state_dict(),
            "optimizers": self.agent.optimizer_state(),
            "normalizer": self.normalizer.state_dict(),
            "rng": checkpoint.rng_state(),
            "dataset_sampler": None if self.dataset is None else self.dataset.generator.get_state(),
            "replay": None if self.replay is None else self.replay.state_dict(),
            "eval_history": self.eval_history,
            "config": self.run_config,
        }
        checkpoint.save_atomic(state, self.checkpoint_path)

    def _restore(self, state: dict[str, Any]) -> None:
        self.agent.load_state_dict(state["agent"])
        self.agent.load_optimizer_state(state["optimizers"])
        self.normalizer.load_state_dict(state["normalizer"])
        checkpoint.set_rng_state(state["rng"])
        if self.dataset is not None and state["dataset_sampler"] is not None:
            self.dataset.generator.set_state(state["dataset_sampler"])
        if state["replay"] is not None:
            self.replay = TransitionStore(self.agent.obs_dim, self.agent.act_dim, self.cfg.buffer_size,
                                          self.device, self.seed + 1)
            self.replay.load_state_dict(state["replay"])
        self.offline_step, self.env_step = state["offline_step"], state["env_step"]
        self.update_step = state["update_step"]
        self.wall_s, self.update_s, self.eval_history = state["wall_s"], state["update_s"], state["eval_history"]
        self.online_s, self.online_steps = state["online_s"], state["online_steps"]
        tqdm.write(f"offrl: resuming from {self.checkpoint_path} at step {self._progress()}")

    def _results(self) -> dict[str, Any]:
        last = self.eval_history[-1]
        return {
            "normalized_score": last.get("normalized_score"),
            "return_mean": last["return_mean"],
            "return_std": last["return_std"],
            "steps": self._progress(),
            "gradient_steps": self.update_step,
            "wall_s": self.wall_s,
            "updates_per_s": self.update_step / self.update_s if self.update_s > 0 else None,
            "env_steps_per_s": self.online_steps / self.online_s if self.online_s > 0 else None,
            "eval_episodes": self.cfg.eval_episodes,
            "ref_min_score": self.info.ref_min_score,
            "ref_max_score": self.info.ref_max_score,
            "eval_history": self.eval_history,
        }


def _crossed(previous: int, current: int, every: int) -> bool:
    """True when a multiple of ``every`` lies in (previous, current]."""
    return current // every > previous // every
