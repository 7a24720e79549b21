"""Assemble a training run from a composed config: data, agent, trainer; write results.json."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from offrl.agents import AGENTS, AgentConfig, agent_config, make_agent
from offrl.core import checkpoint, records
from offrl.core.config import copies, one_of, seed_list, seed_value, typed
from offrl.core.errors import ConfigError, DatasetError
from offrl.core.precision import PRECISIONS
from offrl.core.runtime import choose_threads, cpu_model, flush_denormals, resolve_device, resolve_precision
from offrl.data.arrays import DatasetInfo
from offrl.data.batches import Mixture, StoreSampler
from offrl.data.goals import GoalRelabel, goal_threshold, wants_relabelling
from offrl.data.sources import Builder, DatasetConfig, load_dataset
from offrl.data.store import REPLAY_COLUMNS, ObsNormalizer, TransitionStore
from offrl.diffusion.synthetic import SyntheticConfig, SyntheticSource
from offrl.diffusion.trajectory import load_model
from offrl.envs import env_spaces
from offrl.training.seeds import SeedBatches, SeedView, stack_agents
from offrl.training.trainer import Member, Trainer, TrainerConfig

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # torch.compile modes


@dataclass
class RunConfig:
    """Top-level keys of ``conf/config.yaml`` (the agent, dataset and trainer groups have their own
    dataclasses: the agent's config class, ``DatasetConfig`` and ``TrainerConfig``)."""

    seed: int = seed_value(0)
    # train these seeds in one process: one agent with a seed axis on every network (offline agents with
    # Agent.seed_axis), a run directory per seed (seed_<s>/) under the run's; None: the one seed ``seed``
    seeds: list[int] | None = seed_list(None)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    env: str | None = None  # evaluation / online env id; None: the one the dataset names
    compile: bool = False  # torch.compile the agent's update: one graph per update, optimiser steps included
    compile_mode: str = one_of(*COMPILE_MODES)  # torch.compile's mode: default, reduce-overhead (CUDA graphs), ...
    threads: int | None = copies(None)  # torch intra-op threads; None: auto, the cores free at start (choose_threads)
    # what updates compute in: fp32; bf16 (autocast: matmuls and activations bf16, weights, optimiser state, outputs,
    # targets and losses fp32; offrl.core.precision); tf32 (CUDA); auto: bf16 where measured faster (resolve_precision)
    precision: str = one_of(*PRECISIONS)
    resume: str | None = None  # a run directory to continue
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)  # synthetic data (policy-guided diffusion)


TOP_KEYS = {f.name for f in fields(RunConfig)} | {"agent", "dataset", "trainer"}


def parse_config(cfg: DictConfig) -> tuple[RunConfig, AgentConfig, TrainerConfig, DatasetConfig]:
    """The typed configs of a composed config; an unknown key, a wrong type or a value out of range is a ConfigError.
    ``loaded`` (what the data reader took, written into a run's config.yaml) is not an input."""
    unknown = sorted(set(cfg.keys()) - TOP_KEYS - {"loaded"})
    if unknown:
        raise ConfigError(f"unknown top-level key(s) {unknown}; expected {sorted(TOP_KEYS)}")
    top = typed(RunConfig, {k: cfg[k] for k in cfg if k in TOP_KEYS - {"agent", "dataset", "trainer"}}, "")
    agent_cfg = agent_config(cfg.agent)
    trainer_cfg = typed(TrainerConfig, cfg.get("trainer", {}), "trainer")
    dataset_cfg = typed(DatasetConfig, cfg.get("dataset", {}), "dataset")
    if top.seeds is not None:
        check_seeds(top, trainer_cfg)
    check_columns(agent_cfg.name, top, trainer_cfg)
    if top.synthetic.enabled and top.synthetic.model is None:
        raise ConfigError("synthetic=pgd|unguided needs synthetic.model=<dir>, a trajectory model of this dataset "
                          "(offrl diffusion train dataset=<name>); without it the run would train on real data only")
    return top, agent_cfg, trainer_cfg, dataset_cfg


def check_seeds(top: RunConfig, trainer: TrainerConfig) -> None:
    """``seeds=[...]`` trains offline, on uniform dataset rows, with one update per batch."""
    if len(set(top.seeds)) != len(top.seeds):
        raise ConfigError(f"seeds={top.seeds} must be a list of distinct seeds")
    if trainer.mode != "offline":
        raise ConfigError(f"seeds=[...] trains offline agents in one process; trainer.mode={trainer.mode} runs one "
                          "seed per process: use offrl train -m seed=" + ",".join(map(str, top.seeds)))
    if top.synthetic.model is not None:
        raise ConfigError("seeds=[...] cannot be combined with synthetic.model (its data source has no seed axis); "
                          "use offrl train -m seed=...")
    if trainer.utd != 1:
        raise ConfigError(f"seeds=[...] needs trainer.utd=1 (got {trainer.utd})")


def check_columns(agent: str, top: RunConfig, trainer: TrainerConfig) -> None:
    """An agent reading dataset columns beyond the transition (Agent.dataset_columns) needs the dataset, and batches
    that hold them: an online run has no dataset, synthetic data holds none, and an online replay holds only
    REPLAY_COLUMNS (the returns-to-go, added with each episode when it ends)."""
    columns = AGENTS[agent].dataset_columns
    if not columns:
        return
    read = f"agent={agent} reads the dataset's {', '.join(columns)}"
    in_replay = set(columns) <= set(REPLAY_COLUMNS)
    if trainer.mode == "online":
        modes = "offline or offline_to_online" if in_replay else "offline"
        raise ConfigError(f"trainer.mode=online: {read}, and an online run has no dataset; expected "
                          f"trainer.mode={modes} with dataset=<name>")
    if trainer.mode == "offline_to_online" and not in_replay:
        raise ConfigError(f"trainer.mode=offline_to_online: {read}, which online replay rows do not hold; expected "
                          "trainer.mode=offline")
    if top.synthetic.model is not None:
        raise ConfigError(f"synthetic.model={top.synthetic.model}: {read}, which synthetic rows do not hold; "
                          "expected no synthetic data")


def synthetic_mixture(cfg: SyntheticConfig, store: TransitionStore | None, real, agent, normalizer: ObsNormalizer,
                      dataset: str, seed: int) -> Mixture:
    """Batches of ``cfg.share`` synthetic rows (a SyntheticSource over the trajectory model in ``cfg.model``,
    which must have been trained on this dataset) and real rows for the rest."""
    if store is None:
        raise ConfigError("synthetic.model needs offline data (dataset=<name>); online runs have none to mix")
    model = load_model(cfg.model, dataset=dataset, obs_dim=agent.obs_dim, act_dim=agent.act_dim,
                       device=store.device)
    synthetic = SyntheticSource(cfg, model, agent, normalizer, seed)
    horizon, steps = cfg.horizon or model.cfg.sample_horizon, cfg.sampler_steps or model.cfg.sampler_steps
    print(f"offrl: synthetic data from {cfg.model}: {cfg.share:.3f} of each batch, tables of "
          f"{synthetic.num_trajectories} trajectories x {horizon - 1} transitions ({steps} sampler steps), regenerated "
          f"every {cfg.refresh_every} updates, guidance coefficient {cfg.guidance_coef}")
    return Mixture([(synthetic, cfg.share), (real or StoreSampler(store), 1.0 - cfg.share)])


def train(cfg: DictConfig | dict[str, Any], run_dir: str | Path, build: Builder | None = None) -> dict[str, Any]:
    """Train as ``cfg`` says, in ``run_dir`` (continuing it if ``cfg.resume`` is set). Everything is
    checked before the run directory is written to, and a directory that holds another run is refused; the directory
    is locked while training. ``build`` makes a named
    dataset that is not in the cache yet (``offrl.generation.recipes.ensure_recipe_dataset``; the command line
    passes it); without it such a dataset is an error naming the build command."""
    run_dir = Path(run_dir)
    cfg = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(cfg)
    top, agent_cfg, trainer_cfg, dataset_cfg = parse_config(cfg)
    if top.resume is None:
        records.check_unowned(run_dir, "offrl train")  # a single run's or a sweep job's directory
    device = resolve_device(top.device)
    torch.set_num_threads(choose_threads(top.threads))
    precision = resolve_precision(top.precision, device)  # measured on the threads chosen (auto)
    flush_denormals()
    checkpoint.seed_everything(top.seed)

    label = dataset_cfg.name if dataset_cfg.size is None else f"{dataset_cfg.name}-{dataset_cfg.size}"
    if top.synthetic.model is not None:  # a model of another dataset is refused before that dataset is built
        load_model(top.synthetic.model, dataset=label)
    store, loaded, offline_source = None, None, None
    if trainer_cfg.mode == "online":
        env_id = top.env or dataset_cfg.env_id
        if env_id is None:
            raise ConfigError("trainer.mode=online needs env=<gymnasium id>")
        info = DatasetInfo(name=env_id, source="env", location=env_id, env_id=env_id,
                           ref_min_score=dataset_cfg.ref_min_score, ref_max_score=dataset_cfg.ref_max_score)
        obs_space, act_space = env_spaces(env_id)  # an unknown id is one line with suggestions
        obs_dim, act_dim = obs_space.shape[0], act_space.shape[0]
        normalizer = ObsNormalizer(obs_dim)
    else:
        if top.env:
            dataset_cfg.env_id = top.env
        data = load_dataset(dataset_cfg, build=build)
        info, loaded = data.info, data.summary()
        print(f"offrl: {data.describe()}")
        outside = info.extra.get("actions_outside_bounds", 0)
        if outside and AGENTS[agent_cfg.name].needs_actions_in_bounds:
            fits = sorted(name for name, cls in AGENTS.items() if not cls.needs_actions_in_bounds)
            raise DatasetError(f"{info.location}: {outside} rows have actions outside the bounds of {info.env_id}; "
                               f"agent={agent_cfg.name} evaluates dataset actions where only the env's bounds exist "
                               f"and cannot learn from them; rescale the actions, or use one of {fits}")
        obs_dim, act_dim = data.obs_dim, data.act_dim
        normalizer = ObsNormalizer.fit(data.observations) if agent_cfg.normalize_states else ObsNormalizer(obs_dim)
        store = TransitionStore.from_data(data, device, seed=top.seed, columns=AGENTS[agent_cfg.name].dataset_columns,
                                          discount=getattr(agent_cfg, "discount", None))  # the agent's, if it has one
        store.normalize_obs(normalizer)
        if wants_relabelling(dataset_cfg.relabel, info.obs_spec, info.location):
            if dataset_cfg.relabel.policy.enabled and not AGENTS[agent_cfg.name].policy_goals:
                readers = sorted(name for name, cls in AGENTS.items() if cls.policy_goals)
                raise ConfigError(f"dataset.relabel.policy: agent={agent_cfg.name} trains its policy on the "
                                  f"transition's goals; policy goals of their own need one of {readers}")
            offline_source = GoalRelabel(store, info.obs_spec, normalizer, dataset_cfg.relabel,
                                         threshold=goal_threshold(info))
            relabel = dataset_cfg.relabel
            policy = f"; policy goals: {relabel.policy.describe()}" if relabel.policy.enabled else ""
            print(f"offrl: goal-conditioned: hindsight relabelling, goals {relabel.describe()}; reward "
                  f"{'success - 1' if relabel.negative else 'success'}{policy}")
    normalizer = normalizer.to(device)

    resolved = OmegaConf.to_container(cfg, resolve=True)
    resolved.pop("loaded", None)
    if loaded is not None:
        resolved["loaded"] = loaded
    members = None
    if top.seeds is None:
        checkpoint.seed_everything(top.seed)  # the agent's initial parameters and noise stream
        agent = make_agent(agent_cfg, obs_dim, act_dim, device)
    else:  # K agents, each made as its lone run makes it, trained as one
        if offline_source is not None:
            raise ConfigError("seeds=[...] samples uniform dataset rows per seed; goal relabelling "
                              f"(dataset.relabel={dataset_cfg.relabel}) has no seed axis: use offrl train -m seed=...")
        lone = []
        for s in top.seeds:
            checkpoint.seed_everything(s)
            lone.append(make_agent(agent_cfg, obs_dim, act_dim, device))
        agent = stack_agents(lone)
        offline_source = SeedBatches(store, top.seeds)
        members = [Member(s, run_dir / f"seed_{s}", SeedView(agent, k, lone[k]), {**resolved, "seed": s, "seeds": None},
                          index=k) for k, s in enumerate(top.seeds)]
    if store is not None:
        agent.attach_dataset(store)
    if top.synthetic.model is not None:
        offline_source = synthetic_mixture(top.synthetic, store, offline_source, agent, normalizer, label, top.seed)
    precision.prepare(agent)  # bf16: the networks' output layers stay fp32
    if top.compile:
        agent.enable_compile(mode=top.compile_mode)
    with checkpoint.RunLock(run_dir):
        trainer = Trainer(trainer_cfg, agent, run_dir, top.seed, normalizer, info, store, resolved, offline_source,
                          members, precision=precision)
        if top.resume is not None:
            trainer.restore()  # a checkpoint that does not fit is refused before config.yaml is rewritten
        records.write_config(run_dir, resolved)
        for member in trainer.members:
            if member.run_dir == run_dir:
                continue
            member.run_dir.mkdir(parents=True, exist_ok=True)
            records.write_config(member.run_dir, member.config)
        runs = []
        for member, results in zip(trainer.members, trainer.run(resume=top.resume is not None)):
            results = {"agent": agent_cfg.name, "dataset": info.name, "env_id": info.env_id, "seed": member.seed,
                       "device": str(device), "precision": precision.name, "host": socket.gethostname(),
                       "cpu": cpu_model(), "torch": torch.__version__, "pid": os.getpid(), "data": loaded,
                       "seeds_in_process": len(trainer.members), **results}
            records.write_results(member.run_dir, results)
            runs.append(results)
    if top.seeds is None:
        return runs[0]
    return {"agent": agent_cfg.name, "dataset": info.name, "seeds": top.seeds, "runs": runs,
            "run_dirs": [str(member.run_dir) for member in trainer.members]}
