"""Agent registry: ``make_agent(name or config, obs_dim, act_dim)``."""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import OmegaConf

from offrl.agents.a2pr import A2PR
from offrl.agents.base import Agent, AgentConfig
from offrl.agents.bc import BC
from offrl.agents.cql import CQL, CalQL
from offrl.agents.expo import EXPO
from offrl.agents.fql import FQL
from offrl.agents.iql import IQL
from offrl.agents.odice import ODICE
from offrl.agents.pmoe import PMOE
from offrl.agents.prdc import PRDC
from offrl.agents.rebrac import ReBRAC
from offrl.agents.sac import SAC
from offrl.agents.td3bc import TD3BC
from offrl.core.config import typed, validate
from offrl.core.errors import ConfigError

# The one list of agents, in the order reports and tables show them: offline agents from the simplest, then the
# online and offline-to-online ones.
AGENTS: dict[str, type[Agent]] = {
    "bc": BC, "td3bc": TD3BC, "prdc": PRDC, "a2pr": A2PR, "rebrac": ReBRAC, "odice": ODICE, "iql": IQL,
    "cql": CQL, "fql": FQL, "sac": SAC, "pmoe": PMOE, "expo": EXPO, "calql": CalQL,
}


def agent_config(cfg: dict[str, Any] | Any) -> AgentConfig:
    """Typed config for ``cfg['name']``; an unknown key, a wrong type or a value out of range is a ConfigError."""
    raw = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)
    name = raw.get("name")
    if name not in AGENTS:
        raise ConfigError(f"agent.name='{name}' is unknown; expected one of {sorted(AGENTS)}")
    return typed(AGENTS[name].config_class, raw, "agent")


def make_agent(cfg: dict[str, Any] | AgentConfig | Any, obs_dim: int, act_dim: int, device: str = "cpu") -> Agent:
    """The agent ``cfg`` names, its config checked (``offrl.core.config.validate``) whether given as a dict, a
    Hydra node or a config instance."""
    if isinstance(cfg, AgentConfig):
        validate(cfg, "agent")
        config = cfg
    else:
        config = agent_config(cfg)
    with torch.device(device):  # build parameters (and fused optimisers) directly on the device
        return AGENTS[config.name](config, obs_dim, act_dim)


__all__ = ["AGENTS", "Agent", "AgentConfig", "agent_config", "make_agent"]
