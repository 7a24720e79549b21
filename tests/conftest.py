"""Shared fixtures: an isolated dataset cache and small datasets written in the real formats."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # Minari must never wait on a network in tests

SMALL_SIZE = 5_000  # transitions of the small default-recipe dataset the tests train on
FAST = ["agent.hidden_dims=[64,64]", f"dataset.size={SMALL_SIZE}", "trainer.eval_episodes=2", "device=cpu"]


@pytest.fixture(scope="session", autouse=True)
def data_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("offrl-data")
    os.environ["OFFRL_DATA_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def small_default_dataset(data_dir) -> Path:
    from offrl.generation.recipes import ensure_recipe_dataset

    return ensure_recipe_dataset("idp-mixed", SMALL_SIZE)


@pytest.fixture
def fresh_compiler():
    """torch.compile's caches emptied, for a test that counts graphs: earlier tests compile the same code objects
    (TD3BC.iteration, shared by its subclasses, for many agents), and past dynamo's recompile limit a code object
    runs eagerly, which a graph count would take for a missing graph."""
    torch._dynamo.reset()


def make_episodes(lengths: list[int], ends: list[str], obs_dim: int = 3, act_dim: int = 2, seed: int = 0):
    """Episodes as D4RL raw arrays. ``ends[i]`` is 'terminal' or 'timeout'. Observation t of episode e is
    filled with 1000 * e + t so successor relations are easy to check."""
    rng = np.random.default_rng(seed)
    obs, next_obs, terminals, timeouts = [], [], [], []
    for e, (length, end) in enumerate(zip(lengths, ends)):
        states = 1000.0 * e + np.arange(length + 1, dtype=np.float32)
        obs.append(np.repeat(states[:-1, None], obs_dim, 1))
        next_obs.append(np.repeat(states[1:, None], obs_dim, 1))
        terminals.append(np.eye(1, length, length - 1, dtype=bool)[0] & (end == "terminal"))
        timeouts.append(np.eye(1, length, length - 1, dtype=bool)[0] & (end == "timeout"))
    n = sum(lengths)
    return {
        "observations": np.concatenate(obs),
        "next_observations": np.concatenate(next_obs),
        "actions": rng.uniform(-1, 1, (n, act_dim)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "terminals": np.concatenate(terminals),
        "timeouts": np.concatenate(timeouts),
    }


def keep_gradients(agent, step: bool = True) -> None:
    """Make ``agent``'s optimiser steps leave the gradients in ``.grad`` for inspection (agents clear them
    after each step); with ``step=False`` the parameters stay unchanged as well."""
    def apply(name: str) -> None:
        if step:
            agent.optimizers[name].step()
    agent.apply_gradients = apply
