"""Many seeds in one process: a seed trained inside a K-seed stack follows the losses and parameters of the
same seed trained alone."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from offrl.agents import make_agent
from offrl.data.arrays import DatasetInfo, OfflineData
from offrl.data.store import TransitionStore
from offrl.errors import ConfigError
from offrl.seeds import SeedBatches, seed_state_dict, stack_agents
from tests.test_compile import GraphCounter

OBS, ACT = 5, 2
CONFIGS = {
    "bc": {"hidden_dims": [16, 16]},
    "td3bc": {"hidden_dims": [16, 16]},
    "prdc": {"hidden_dims": [16, 16]},
    "iql": {"hidden_dims": [16, 16]},
    "iql_deterministic": {"name": "iql", "hidden_dims": [16, 16], "policy": "deterministic"},
    "a2pr": {"hidden_dims": [16], "critic_hidden_dims": [16], "vae_hidden_dims": [16]},
    "odice": {"hidden_dims": [16, 16], "value_hidden_dims": [16, 16]},  # per-seed orthogonal projection
    "odice_single_head": {"name": "odice", "hidden_dims": [16], "value_hidden_dims": [16], "twin_value": False,
                          "value_layer_norm": False},
}
SEEDS = [3, 0, 7]


def _data() -> OfflineData:
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(300, OBS)).astype(np.float32)
    return OfflineData(obs, rng.uniform(-1, 1, (300, ACT)).astype(np.float32), rng.normal(size=300).astype(np.float32),
                       obs + 0.1, rng.random(300) < 0.1, np.zeros(300, bool), DatasetInfo("t", "test", "test"))


def _agent(key: str, seed: int, store: TransitionStore):
    cfg = {"name": key, **CONFIGS[key]}
    torch.manual_seed(seed)
    agent = make_agent(cfg, OBS, ACT)
    agent.attach_dataset(store)
    return agent


@pytest.mark.parametrize("key", sorted(CONFIGS))
def test_a_seed_in_a_stack_follows_the_same_seed_alone(key):
    data = _data()
    stores = {s: TransitionStore.from_data(data, seed=s) for s in SEEDS}
    alone = {s: _agent(key, s, stores[s]) for s in SEEDS}
    stacked = stack_agents([_agent(key, s, stores[s]) for s in SEEDS])
    stacked.attach_dataset(stores[SEEDS[0]])
    batches = SeedBatches(stores[SEEDS[0]], SEEDS)
    for step in range(6):  # TD3's delayed actor steps included
        got = stacked.update(batches.sample(32))
        for k, s in enumerate(SEEDS):
            expected = alone[s].update(stores[s].sample(32))
            assert expected.keys() == got.keys()
            for name, value in expected.items():
                torch.testing.assert_close(got[name][k], value, rtol=1e-4, atol=1e-5,
                                           msg=f"{name} seed {s} step {step}")
    for k, s in enumerate(SEEDS):
        state = seed_state_dict(stacked, k, alone[s])
        for name, value in alone[s].state_dict().items():
            if not name.endswith("_extra_state"):
                torch.testing.assert_close(state[name], value, rtol=1e-4, atol=1e-5, msg=name)
        restored = copy.deepcopy(alone[s])
        restored.load_state_dict({**alone[s].state_dict(), **state})  # the lone layout loads as is


def test_stacked_update_is_one_compiled_graph():
    data = _data()
    store = TransitionStore.from_data(data)
    stacked = stack_agents([_agent("td3bc", s, store) for s in SEEDS])
    counter = GraphCounter()
    stacked.enable_compile(backend=counter)
    batches = SeedBatches(store, SEEDS)
    for _ in range(4):
        stacked.update(batches.sample(32))
    compiled, runs = counter.compiled, counter.runs
    for _ in range(4):
        stacked.update(batches.sample(32))
    assert counter.compiled == compiled and counter.runs - runs == 4


def test_agents_without_a_seed_axis_are_refused_by_name():
    agents = []
    for s in SEEDS[:2]:
        torch.manual_seed(s)
        agents.append(make_agent({"name": "sac", "hidden_dims": [16]}, OBS, ACT))
    with pytest.raises(ConfigError, match="sac"):
        stack_agents(agents)
