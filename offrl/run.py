"""Assemble a training run from a composed config: data, agent, trainer; write results.json."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from omegaconf import DictConfig, OmegaConf

from offrl import checkpoint
from offrl.agents import agent_config, make_agent
from offrl.config import typed
from offrl.data.arrays import DatasetInfo
from offrl.data.sources import DatasetConfig, load_dataset
from offrl.data.store import ObsNormalizer, TransitionStore
from offrl.errors import ConfigError
from offrl.trainer import Trainer, TrainerConfig


@dataclass
class RunConfig:
    """Top-level keys of ``conf/config.yaml`` (the agent, dataset and trainer groups have their own
    dataclasses: the agent's config class, ``DatasetConfig`` and ``TrainerConfig``)."""

    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    env: str | None = None  # evaluation / online env id; None: the one the dataset names
    compile: bool = False  # torch.compile the agent's update
    threads: int | None = None  # torch intra-op threads; None: torch's default
    resume: str | None = None  # a run directory to continue


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name} but torch sees no CUDA device (torch {torch.__version__})")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device={name} is not a torch device; expected auto, cpu, cuda or cuda:N") from None


def train(cfg: DictConfig | dict[str, Any], run_dir: str | Path) -> dict[str, Any]:
    """Train as ``cfg`` says, in ``run_dir`` (continuing it if ``cfg.resume`` is set)."""
    run_dir = Path(run_dir)
    cfg = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(cfg)
    top = typed(RunConfig, {k: v for k, v in cfg.items() if k not in ("agent", "dataset", "trainer")}, "config")
    agent_cfg = agent_config(cfg.agent)
    trainer_cfg = typed(TrainerConfig, cfg.get("trainer", {}), "trainer")
    dataset_cfg = typed(DatasetConfig, cfg.get("dataset", {}), "dataset")
    trainer_cfg.check()
    device = resolve_device(top.device)
    if top.threads:
        torch.set_num_threads(top.threads)
    checkpoint.seed_everything(top.seed)

    store = None
    if trainer_cfg.mode == "online":
        env_id = top.env or dataset_cfg.env_id
        if env_id is None:
            raise ConfigError("trainer.mode=online needs env=<gymnasium id>")
        info = DatasetInfo(name=env_id, source="env", location=env_id, env_id=env_id,
                           ref_min_score=dataset_cfg.ref_min_score, ref_max_score=dataset_cfg.ref_max_score)
        probe = gym.make(env_id)
        obs_dim, act_dim = probe.observation_space.shape[0], probe.action_space.shape[0]
        probe.close()
        normalizer = ObsNormalizer(obs_dim)
    else:
        if top.env:
            dataset_cfg.env_id = top.env
        data = load_dataset(dataset_cfg)
        info = data.info
        obs_dim, act_dim = data.obs_dim, data.act_dim
        normalizer = ObsNormalizer.fit(data.observations) if agent_cfg.normalize_states else ObsNormalizer(obs_dim)
        store = TransitionStore.from_data(data, device, seed=top.seed)
        store.normalize_obs(normalizer)
    normalizer = normalizer.to(device)

    agent = make_agent(agent_cfg, obs_dim, act_dim, device)
    if store is not None:
        agent.attach_dataset(store)
    if top.compile:
        agent.enable_compile()
    resolved = OmegaConf.to_container(cfg, resolve=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(resolved))
    trainer = Trainer(trainer_cfg, agent, run_dir, top.seed, normalizer, info, store, resolved)
    results = trainer.run(resume=top.resume is not None)
    results = {"agent": agent_cfg.name, "dataset": info.name, "env_id": info.env_id, "seed": top.seed,
               "device": str(device), **results}
    (run_dir / "results.json").write_text(json.dumps(results, indent=2))
    return results
