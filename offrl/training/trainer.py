"""One training loop for every agent. A run is a sequence of phases (offline gradient steps; online
environment steps with warm-up and an updates-per-step ratio), each drawing batches from a batch
source; every phase logs, evaluates, checks for NaN, checkpoints and resumes the same way.

``trainer.mode`` only chooses the phases: offline = [offline], online = [online], offline_to_online =
[pretrain (offline), online with batches mixing dataset and replay].

What is evaluated, logged and reported is a list of *members*, one per seed: one for a lone agent (its
run directory is the run's), K for K seeds stacked in one agent (``offrl.training.seeds``: a run directory each,
under the run's, holding what a lone run holds; the run's own checkpoint holds the stack).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.tensorboard import SummaryWriter

from offrl.agents.base import Agent
from offrl.core import checkpoint
from offrl.core.config import (
    MAX_BATCH,
    MAX_COPIES,
    MAX_ROWS,
    copies,
    fraction,
    non_negative,
    one_of,
    positive,
    validate,
)
from offrl.core.errors import ConfigError, Interrupted, TrainingDiverged
from offrl.core.precision import Precision, fp32_metrics
from offrl.core.progress import progress, write
from offrl.core.records import RunDir, RunInfo
from offrl.core.signals import STOP, catch_stop_signals
from offrl.data.arrays import DatasetInfo
from offrl.data.batches import BatchSource, Mixture, StoreSampler
from offrl.data.store import Batch, EpisodeWriter, ObsNormalizer, TransitionStore
from offrl.envs import make_vec_env, set_vec_env_state, vec_env_state
from offrl.training.evaluation import EnvEvaluation, Evaluation, Learner


@dataclass
class TrainerConfig:
    mode: str = one_of("offline", "online", "offline_to_online")  # offline | online | offline_to_online
    steps: int = positive(1_000_000)  # gradient steps (offline) or environment steps (online, offline_to_online)
    batch_size: int = positive(256, most=MAX_BATCH)
    eval_every: int = positive(5_000)
    eval_episodes: int = positive(10, most=MAX_BATCH)
    eval_envs: int = copies(10)  # vector-env width for evaluation
    log_every: int = positive(1_000)
    checkpoint_every: int = positive(50_000)
    # online and offline-to-online
    num_envs: int = copies(1)
    warmup_steps: int = non_negative(10_000)  # uniform-random environment steps before learning starts
    updates_per_step: float = non_negative(1.0, most=MAX_COPIES)  # gradient updates per environment step
    # critic minibatches per update (RLPD/EXPO's UTD): an update draws utd * batch_size rows, runs the
    # agent's critic_update on each consecutive minibatch and its policy_update once, on the last
    utd: int = copies(1)
    buffer_size: int = positive(1_000_000, most=MAX_ROWS)
    pretrain_steps: int = non_negative(0)  # offline_to_online: offline gradient steps before going online
    offline_fraction: float = fraction(0.5)  # offline_to_online: share of each batch drawn from the dataset
    snapshot_policies: bool = False  # save the agent at every evaluation (snapshots/step_N.pt)


class Logger:
    """TensorBoard scalars plus short console lines (written through tqdm so the bar survives)."""

    def __init__(self, run_dir: Path, purge_step: int | None) -> None:
        self.writer = SummaryWriter(str(RunDir(run_dir).tb), purge_step=purge_step)

    def scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(f"{prefix}/{key}", value, step)

    def console(self, text: str) -> None:
        write(text)

    def close(self) -> None:
        self.writer.close()


@dataclass
class Member:
    """One seed of a run: evaluated, logged, checkpointed for evaluation and reported on its own.
    ``policy()`` is the agent acting for it (the trained agent itself, or a lone view of one seed of a stack,
    ``offrl.training.seeds.SeedView``); ``index`` its position on the metrics' seed axis (None: scalar metrics)."""

    seed: int
    run_dir: Path
    policy: Callable[[], Agent]
    config: dict[str, Any]
    index: int | None = None
    eval_history: list[dict[str, Any]] = field(default_factory=list)


# ---------------------------------------------------------------------- phases
class Phase:
    """A stretch of training with its own step counter, ``step`` of ``steps``."""

    name: str
    unit: str

    def __init__(self, name: str, steps: int) -> None:
        self.name, self.steps, self.step = name, steps, 0

    def run(self, trainer: Trainer) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = state["step"]


class OfflinePhase(Phase):
    """Gradient steps on batches from ``source``."""

    unit = "step"

    def __init__(self, name: str, steps: int, source: BatchSource, batch_size: int, pretraining: bool = False) -> None:
        super().__init__(name, steps)
        self.source, self.batch_size, self.pretraining = source, batch_size, pretraining

    def run(self, trainer: Trainer) -> None:
        with trainer.progress_bar(self) as bar:
            while self.step < self.steps:
                self.source.refresh(trainer.update_step)
                trainer.update(self.source.sample(self.batch_size * trainer.cfg.utd), self.pretraining)
                self.step += 1
                bar.update(1)
                trainer.periodic(self, self.step - 1)

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "source": self.source.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = state["step"]
        self.source.load_state_dict(state["source"])


class OnlinePhase(Phase):
    """Environment steps on a vector env into a replay store; after ``warmup_steps`` uniform-random
    steps, ``updates_per_step`` updates per env step on batches of the replay, or of a mixture of
    ``offline`` data (share ``offline_fraction``) and the replay. With a ``returns_discount`` (offline
    data holding returns-to-go) the replay gets each episode whole when it ends, with its returns
    (``EpisodeWriter``).

    Resume is exact: the checkpoint holds the vector env's full state (``vec_env_state``: simulator,
    wrappers, RNGs, elapsed steps, autoreset flags), the observations in hand, the returns of the
    episodes in progress (and their rows, where the replay takes whole episodes), the exploration RNG and
    the fractional update debt."""

    unit = "env step"

    def __init__(self, name: str, cfg: TrainerConfig, replay: TransitionStore, offline: BatchSource | None,
                 seed: int, returns_discount: float | None = None) -> None:
        super().__init__(name, cfg.steps)
        self.cfg, self.replay, self.seed = cfg, replay, seed
        self.writer = EpisodeWriter(replay, cfg.num_envs, returns_discount)
        online = StoreSampler(replay)
        self.source: BatchSource = online if offline is None else Mixture(
            [(offline, cfg.offline_fraction), (online, 1.0 - cfg.offline_fraction)])
        self.envs = None
        self.saved_envs: dict[str, Any] | None = None
        self.explore_rng = np.random.default_rng([seed, 0])
        self.obs: np.ndarray | None = None
        self.restarted = np.zeros(cfg.num_envs, bool)  # sub-envs whose next step() is an autoreset
        self.episode_return = np.zeros(cfg.num_envs)
        self.finished_returns: list[float] = []
        self.update_debt = 0.0

    def run(self, trainer: Trainer) -> None:
        cfg, info = self.cfg, trainer.info
        self.envs = make_vec_env(info.env_id, cfg.num_envs, info.env_kwargs)
        if self.saved_envs is None:
            self.obs, _ = self.envs.reset(seed=self.seed)
        else:
            set_vec_env_state(self.envs, self.saved_envs)
        act_dim = self.envs.single_action_space.shape[0]
        try:
            with trainer.progress_bar(self) as bar:
                while self.step < self.steps:
                    tick = time.perf_counter()
                    self._env_step(trainer, act_dim)
                    previous = self.step
                    self.step += cfg.num_envs
                    bar.update(cfg.num_envs)
                    if self.step >= cfg.warmup_steps:
                        self.update_debt += cfg.updates_per_step * cfg.num_envs
                        while self.update_debt >= 1.0:
                            self.source.refresh(trainer.update_step)
                            trainer.update(self.source.sample(cfg.batch_size * cfg.utd))
                            self.update_debt -= 1.0
                        trainer.online_s += time.perf_counter() - tick  # env + acting + updates, no evaluation
                        trainer.online_steps += cfg.num_envs
                    if self.finished_returns and _crossed(previous, self.step, cfg.log_every):
                        trainer.loggers[0].scalars("train", {"episode_return": float(np.mean(self.finished_returns))},
                                               trainer.global_step(self))
                        self.finished_returns.clear()
                    trainer.periodic(self, previous)
        finally:
            self.saved_envs = vec_env_state(self.envs)
            self.envs.close()
            self.envs = None

    def _env_step(self, trainer: Trainer, act_dim: int) -> None:
        cfg, device = self.cfg, trainer.device
        obs_t = trainer.normalizer(torch.as_tensor(self.obs, dtype=torch.float32, device=device))
        if self.step < cfg.warmup_steps:
            actions = self.explore_rng.uniform(-1.0, 1.0, (cfg.num_envs, act_dim)).astype(np.float32)
        else:
            actions = trainer.agent.act(obs_t, deterministic=False).cpu().numpy()
        next_obs, rewards, terminated, truncated, _ = self.envs.step(actions)
        valid = ~self.restarted  # an autoreset step carries no transition
        if valid.any():
            next_t = trainer.normalizer(torch.as_tensor(next_obs[valid], dtype=torch.float32, device=device))
            self.writer.add(np.flatnonzero(valid), obs_t[torch.as_tensor(valid, device=device)], actions[valid],
                            rewards[valid], next_t, terminated[valid], (terminated | truncated)[valid])
        self.episode_return += np.where(valid, rewards, 0.0)
        self.restarted = terminated | truncated
        for k in np.flatnonzero(self.restarted):
            self.finished_returns.append(float(self.episode_return[k]))
            self.episode_return[k] = 0.0
        self.obs = next_obs

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "replay": self.replay.state_dict(),
            "episodes": self.writer.state_dict(),
            "source": self.source.state_dict(),
            "envs": vec_env_state(self.envs) if self.envs is not None else self.saved_envs,
            "obs": self.obs,
            "restarted": self.restarted.copy(),
            "episode_return": self.episode_return.copy(),
            "finished_returns": list(self.finished_returns),
            "update_debt": self.update_debt,
            "explore_rng": self.explore_rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = state["step"]
        self.replay.load_state_dict(state["replay"])
        if "episodes" in state:  # checkpoints from before the EpisodeWriter have none
            self.writer.load_state_dict(state["episodes"])
        self.source.load_state_dict(state["source"])
        self.saved_envs, self.obs = state["envs"], state["obs"]
        self.restarted, self.episode_return = state["restarted"], state["episode_return"]
        self.finished_returns, self.update_debt = state["finished_returns"], state["update_debt"]
        self.explore_rng.bit_generator.state = state["explore_rng"]


def build_phases(cfg: TrainerConfig, agent: Agent, dataset: TransitionStore | None, seed: int,
                 offline: BatchSource | None = None) -> list[Phase]:
    """The phases ``cfg.mode`` stands for; ``offline`` draws the dataset's batches (default: uniform
    rows of ``dataset``; e.g. a goal-relabelling source for goal-conditioned data)."""
    if cfg.mode != "online" and dataset is None:
        raise ConfigError(f"trainer.mode={cfg.mode} needs a dataset")
    if offline is None and dataset is not None:
        offline = StoreSampler(dataset)
    if cfg.mode == "offline":
        return [OfflinePhase("offline", cfg.steps, offline, cfg.batch_size)]
    device = next(agent.parameters()).device
    replay = TransitionStore(agent.obs_dim, agent.act_dim, cfg.buffer_size, device, seed + 1)
    if cfg.mode == "online":
        return [OnlinePhase("online", cfg, replay, None, seed)]
    # the replay holds the dataset's returns-to-go column too (the Mixture combines columns both sources hold)
    online = OnlinePhase("online", cfg, replay, offline, seed, dataset.returns_discount)
    pretrain = OfflinePhase("pretrain", cfg.pretrain_steps, offline, cfg.batch_size, pretraining=True)
    return [pretrain, online] if cfg.pretrain_steps else [online]


# ---------------------------------------------------------------------- trainer
class Trainer:
    """Drives an agent through its phases. ``dataset`` is the offline store (None for purely online
    runs); evaluation and online interaction use ``info.env_id``; scores use ``info``'s reference
    returns."""

    def __init__(
        self,
        cfg: TrainerConfig,
        agent: Learner,
        run_dir: Path,
        seed: int,
        normalizer: ObsNormalizer | None,
        info: DatasetInfo,
        dataset: TransitionStore | None = None,
        run_config: dict[str, Any] | None = None,
        offline_source: BatchSource | None = None,
        members: list[Member] | None = None,
        evaluation: Evaluation | None = None,
        precision: Precision | None = None,
    ) -> None:
        validate(cfg, "trainer")
        self.cfg, self.agent, self.run_dir, self.seed = cfg, agent, Path(run_dir), seed
        self.normalizer, self.info, self.dataset = normalizer, info, dataset
        self.run_config = run_config or {}
        self.members = members or [Member(seed, self.run_dir, lambda: agent, self.run_config)]
        self.device = next(agent.parameters()).device
        # updates run under its autocast (bf16); acting and evaluation in fp32 (offrl.core.precision)
        self.precision = precision or Precision("fp32", self.device.type)
        if cfg.utd > 1 and not agent.supports_utd():
            raise ConfigError(f"trainer.utd={cfg.utd}: agent '{agent.name}' has no separate critic and policy "
                              "updates (critic_step, policy_step); use trainer.utd=1")
        self.phases = build_phases(cfg, agent, dataset, seed, offline_source)
        self.evaluation = evaluation or EnvEvaluation(cfg.eval_episodes, cfg.eval_envs, info, normalizer, self.device)
        # progress counters, all saved in checkpoints
        self.update_step = 0  # gradient steps in total
        self.wall_s = 0.0
        self.update_s = 0.0  # time spent in sampling + updates, for updates/s
        self.online_s = 0.0  # online time once learning runs (evaluation excluded), for env steps/s
        self.online_steps = 0  # env steps taken in that time
        self.metrics: dict[str, Tensor] = {}
        self.checkpoint_path = RunDir(self.run_dir).last
        self.restored = False

    # ------------------------------------------------------------------ entry point
    def run(self, resume: bool = False) -> list[dict[str, Any]]:
        """Train through the phases (resuming from the last checkpoint); the results of each member."""
        if resume and not self.restored:
            self.restore()
        purge = self.global_step(self._current()) if resume else None
        self.loggers = [Logger(member.run_dir, purge_step=purge) for member in self.members]
        start = time.perf_counter() - self.wall_s
        self._clock = lambda: time.perf_counter() - start
        try:
            with catch_stop_signals("stopping after this step and saving a checkpoint"):
                for index, phase in enumerate(self.phases):
                    later_started = any(p.step > 0 for p in self.phases[index + 1:])
                    if phase.step < phase.steps and not later_started:
                        phase.run(self)
                    if not self._evaluated_at(phase) and not later_started:
                        self._evaluate(phase)
                        self._save()
                self.wall_s = self._clock()
                self._save()
        finally:
            for logger in self.loggers:
                logger.close()
            self.evaluation.close()
        return [self._results(member) for member in self.members]

    def _current(self) -> Phase:
        """The phase in progress (the last one once all are done)."""
        return next((p for p in self.phases if p.step < p.steps), self.phases[-1])

    def global_step(self, phase: Phase) -> int:
        """Steps of every phase up to and including ``phase``: the x-axis of TensorBoard."""
        index = self.phases.index(phase)
        return sum(p.step for p in self.phases[: index + 1])

    def progress_bar(self, phase: Phase):
        return progress(phase.steps, phase.name, phase.unit, initial=phase.step)

    def update(self, batch: Batch, pretraining: bool = False) -> None:
        """One update on ``batch`` (utd * batch_size rows): the agent's ``update``, its ``pretrain_update``
        in offline pre-training, or with utd > 1 the UTD schedule (``utd_update``); under the run's precision
        (``Precision.autocast``), its metrics in fp32."""
        tick = time.perf_counter()
        with self.precision.autocast():
            if pretraining:
                metrics = self.agent.pretrain_update(batch)
            elif self.cfg.utd > 1:
                metrics = utd_update(self.agent, batch, self.cfg.utd)
            else:
                metrics = self.agent.update(batch)
        self.metrics.update(fp32_metrics(metrics) if self.precision.bf16 else metrics)
        self.update_s += time.perf_counter() - tick
        self.update_step += 1

    # ------------------------------------------------------------------ periodic work
    def periodic(self, phase: Phase, previous: int) -> None:
        """Log, evaluate and checkpoint when ``phase.step`` crossed an interval since ``previous``."""
        step = phase.step
        if _crossed(previous, step, self.cfg.log_every) and self.metrics:
            self._log(phase)
        if _crossed(previous, step, self.cfg.eval_every):
            self._evaluate(phase)
        if _crossed(previous, step, self.cfg.checkpoint_every) or STOP.requested:
            self._save()
        if STOP.requested:
            raise Interrupted(self.run_dir, self.checkpoint_path, f"{phase.name} step {step} of {phase.steps}",
                              STOP.signum)

    def _log(self, phase: Phase) -> None:
        step = self.global_step(phase)
        for values, logger in zip(self._checked_metrics(phase), self.loggers):
            logger.scalars("train", values, step)
            if self.update_s > 0:
                logger.scalars("perf", {"updates_per_s": self.update_step / self.update_s}, step)
            if self.online_s > 0:
                logger.scalars("perf", {"env_steps_per_s": self.online_steps / self.online_s}, step)

    def _checked_metrics(self, phase: Phase) -> list[dict[str, float]]:
        """The latest metrics of each member, read in one host sync; a non-finite one stops the run."""
        names = list(self.metrics)
        table = torch.stack([torch.as_tensor(value, device=self.device).detach().float().reshape(-1)
                             for value in self.metrics.values()]).cpu()
        per_member = [{name: float(table[i, member.index or 0]) for i, name in enumerate(names)}
                      for member in self.members]
        for member, values in zip(self.members, per_member):
            bad = {key: value for key, value in values.items() if not math.isfinite(value)}
            if bad:
                kept = self.checkpoint_path if self.checkpoint_path.exists() else "none written yet"
                who = f" (seed {member.seed})" if len(self.members) > 1 else ""
                raise TrainingDiverged(f"{phase.name} step {phase.step}{who}: non-finite training metric(s) {bad}; "
                                       f"stopping. Last good checkpoint: {kept}")
        return per_member

    def _evaluated_at(self, phase: Phase) -> bool:
        return any(e["phase"] == phase.name and e["step"] == phase.step for e in self.members[0].eval_history)

    def _evaluate(self, phase: Phase) -> None:
        """Evaluate every member (``self.evaluation``), keep its best policy and snapshots, and print one line."""
        lines = []
        for member, logger in zip(self.members, self.loggers):
            agent = member.policy()
            entry = {"phase": phase.name, "step": phase.step, "global_step": self.global_step(phase),
                     **self.evaluation.measure(agent, member.seed)}
            best = max((self.evaluation.score(e) for e in member.eval_history), default=-math.inf)
            member.eval_history.append(entry)
            replay = getattr(phase, "replay", None)
            policy = {"eval": entry, "agent": agent.state_dict(), "normalizer": _state(self.normalizer),
                      "run": self.run_info(), "config": member.config,
                      "replay_rows": None if replay is None else len(replay)}
            if self.evaluation.score(entry) > best:  # the best evaluation so far (offrl eval --checkpoint best)
                checkpoint.save_atomic(policy, RunDir(member.run_dir).best)
            if self.cfg.snapshot_policies:
                checkpoint.save_atomic(policy, RunDir(member.run_dir).snapshot(entry["global_step"]))
            logger.scalars("eval", {k: v for k, v in entry.items() if isinstance(v, float)}, entry["global_step"])
            shown = self.evaluation.describe(entry)
            lines.append(shown if len(self.members) == 1 else f"seed {member.seed}: {shown}")
        self.loggers[0].console(f"[eval] {phase.name} step {phase.step}: " + "; ".join(lines))

    def run_info(self) -> dict[str, Any]:
        """What a tool needs to rebuild and run the policy without the dataset (offrl eval, export)."""
        return RunInfo(agent=self.agent.name, obs_dim=self.agent.obs_dim, act_dim=self.agent.act_dim,
                       device=str(self.device), env_id=self.info.env_id, env_kwargs=self.info.env_kwargs,
                       ref_min_score=self.info.ref_min_score, ref_max_score=self.info.ref_max_score,
                       dataset=self.info.name).as_dict()

    # ------------------------------------------------------------------ checkpoints
    def _save(self) -> None:
        """The run's checkpoint (checkpoints/last.pt: everything a resume needs). With K members, each
        member's directory also gets a last.pt holding its own agent and evaluations in a lone run's layout
        (for offrl eval, export and report) and naming the run that resumes it."""
        if self.metrics:
            self._checked_metrics(self._current())
        self.wall_s = self._clock()
        state = {
            "phases": {phase.name: phase.state_dict() for phase in self.phases},
            "update_step": self.update_step,
            "wall_s": self.wall_s,
            "update_s": self.update_s,
            "online_s": self.online_s,
            "online_steps": self.online_steps,
            "agent": self.agent.state_dict(),
            "optimizers": self.agent.optimizer_state(),
            "normalizer": _state(self.normalizer),
            "rng": checkpoint.rng_state(),
            "eval_history": [member.eval_history for member in self.members] if self.stacked else
                            self.members[0].eval_history,
            "run": self.run_info(),
            "config": self.run_config,
        }
        checkpoint.save_atomic(state, self.checkpoint_path)
        for name, artifact in self.agent.artifacts().items():  # files the learner publishes beside its checkpoint
            checkpoint.save_atomic(artifact, self.run_dir / name)
        if self.stacked:
            phases = {phase.name: {"step": phase.step} for phase in self.phases}
            for member in self.members:
                checkpoint.save_atomic({
                    "stack": str(self.run_dir), "phases": phases, "update_step": self.update_step,
                    "agent": member.policy().state_dict(), "normalizer": _state(self.normalizer),
                    "eval_history": member.eval_history, "run": self.run_info(), "config": member.config,
                }, RunDir(member.run_dir).last)

    @property
    def stacked(self) -> bool:
        """True when members are seeds of one stacked agent, with run directories of their own."""
        return any(member.index is not None for member in self.members)

    def restore(self) -> None:
        """Load the run's last checkpoint into the learner, phases and counters; a checkpoint that does not fit
        this run is a ConfigError. Called by ``run(resume=True)``, or before it, to check a resume before
        anything is written."""
        self._restore(checkpoint.load(self.checkpoint_path))
        self.restored = True

    def _restore(self, state: dict[str, Any]) -> None:
        where = f"resume from {self.checkpoint_path}"
        saved = state["phases"]
        if not set(saved) <= {phase.name for phase in self.phases}:
            raise ConfigError(f"{where}: the checkpoint holds phases {sorted(saved)}, this run has "
                              f"{[p.name for p in self.phases]} (was trainer.mode changed?)")
        try:
            self.agent.load_state_dict(state["agent"])
            self.agent.load_optimizer_state(state["optimizers"])
            if self.normalizer is not None:
                self.normalizer.load_state_dict(state["normalizer"])
            for phase in self.phases:
                if phase.name in saved:
                    phase.load_state_dict(saved[phase.name])
        except (RuntimeError, KeyError, ValueError) as err:
            raise ConfigError(f"{where}: the checkpoint does not fit this run ({str(err).splitlines()[0]})") from None
        checkpoint.set_rng_state(state["rng"])
        self.update_step, self.wall_s, self.update_s = state["update_step"], state["wall_s"], state["update_s"]
        self.online_s, self.online_steps = state["online_s"], state["online_steps"]
        histories = state["eval_history"] if self.stacked else [state["eval_history"]]
        if len(histories) != len(self.members):
            raise ConfigError(f"{where}: the checkpoint holds {len(histories)} seed(s), "
                              f"this run has {len(self.members)}")
        for member, history in zip(self.members, histories):
            member.eval_history = history
        phase = self._current()
        write(f"offrl: resuming from {self.checkpoint_path} at {phase.name} step {phase.step}")

    def _results(self, member: Member) -> dict[str, Any]:
        return {
            **self.evaluation.summary(member.eval_history[-1]),
            "steps": self.phases[-1].step,
            "phase_steps": {phase.name: phase.step for phase in self.phases},
            "gradient_steps": self.update_step,
            "wall_s": self.wall_s,
            "updates_per_s": self.update_step / self.update_s if self.update_s > 0 else None,
            "env_steps_per_s": self.online_steps / self.online_s if self.online_s > 0 else None,
            "eval_history": member.eval_history,
        }


def utd_update(agent: Agent, batch: Batch, utd: int) -> dict[str, Tensor]:
    """RLPD/EXPO's update schedule: ``agent.critic_update`` on each of ``utd`` consecutive minibatches
    of ``batch`` (a Mixture interleaves its rows, so each keeps the offline/online shares), then
    ``agent.policy_update`` once, on the last minibatch."""
    parts = [None if field is None else field.tensor_split(utd) for field in batch]
    minibatches = [Batch(*(None if part is None else part[k] for part in parts)) for k in range(utd)]
    metrics: dict[str, Tensor] = {}
    for minibatch in minibatches:
        metrics.update(agent.critic_update(minibatch))
    metrics.update(agent.policy_update(minibatches[-1]))
    return metrics


def _state(module: nn.Module | None) -> dict[str, Any] | None:
    return None if module is None else module.state_dict()


def _crossed(previous: int, current: int, every: int) -> bool:
    """True when a multiple of ``every`` lies in (previous, current]."""
    return current // every > previous // every
