"""Capturable updates: with ``enable_compile`` every agent's update runs as one compiled graph, optimiser
steps included, with no graph break and no recompilation, and computes the losses eager mode computes."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from offrl.agents import AGENTS, make_agent
from offrl.data.arrays import DatasetInfo, OfflineData
from offrl.data.store import TransitionStore
from offrl.training.trainer import utd_update

OBS, ACT = 5, 2
SMALL = {
    "bc": {"hidden_dims": [16, 16]},
    "td3bc": {"hidden_dims": [16, 16]},
    "prdc": {"hidden_dims": [16, 16]},
    "a2pr": {"hidden_dims": [16], "critic_hidden_dims": [16], "vae_hidden_dims": [16]},
    "rebrac": {"hidden_dims": [16, 16]},
    "odice": {"hidden_dims": [16, 16], "value_hidden_dims": [16, 16]},
    "iql": {"hidden_dims": [16, 16], "actor_lr_schedule_steps": 100},
    "cql": {"hidden_dims": [16, 16], "cql_n_actions": 3, "cql_lagrange": True, "cql_max_target_backup": True},
    "calql": {"hidden_dims": [16, 16], "cql_n_actions": 3},
    "fql": {"hidden_dims": [16, 16], "critic_hidden_dims": [16, 16], "flow_steps": 3},
    "sac": {"hidden_dims": [16, 16]},
    "pmoe": {"hidden_dims": [16, 16]},
    "expo": {"hidden_dims": [16, 16], "num_qs": 4, "num_min_qs": 2, "num_samples": 3, "num_edit_samples": 3,
             "base_hidden": 16, "base_blocks": 1, "base_block_hidden": 32, "time_features": 8, "time_hidden": 16,
             "diffusion_steps": 4, "decay_steps": 100},
}


class GraphCounter:
    """A torch.compile backend that runs the captured graphs as they are and counts compilations and runs."""

    def __init__(self) -> None:
        self.compiled = self.runs = 0

    def __call__(self, graph: torch.fx.GraphModule, example_inputs):
        self.compiled += 1

        def run(*args):
            self.runs += 1
            return graph(*args)
        return run


def _store(n: int = 200, columns: tuple[str, ...] = ()) -> TransitionStore:
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(n, OBS)).astype(np.float32)
    data = OfflineData(obs, rng.uniform(-1, 1, (n, ACT)).astype(np.float32), rng.normal(size=n).astype(np.float32),
                       obs + 0.1, rng.random(n) < 0.1, np.arange(n) % 50 == 49, DatasetInfo("t", "test", "test"))
    return TransitionStore.from_data(data, columns=columns, discount=0.99)


def _agent(name: str):
    torch.manual_seed(0)
    agent = make_agent({"name": name, **SMALL[name]}, OBS, ACT)
    store = _store(columns=agent.dataset_columns)  # with the columns the agent reads (ReBRAC's next actions)
    agent.attach_dataset(store)
    return agent, store


def test_every_agent_is_covered():
    assert set(SMALL) == set(AGENTS)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_one_graph_per_update_and_no_recompilation(name, fresh_compiler):
    agent, store = _agent(name)
    counter = GraphCounter()
    agent.enable_compile(backend=counter)
    for _ in range(4):  # every variant of the update (TD3's delayed actor step) compiles once
        agent.update(store.sample(32))
    compiled, runs = counter.compiled, counter.runs
    for _ in range(6):
        agent.update(store.sample(32))
    assert counter.compiled == compiled, "an update recompiled"
    assert counter.runs - runs == 6, f"{(counter.runs - runs) / 6} graphs per update (graph breaks)"
    if agent.supports_utd():  # the UTD schedule: one graph per critic minibatch, one for the policy part
        utd_update(agent, store.sample(64), 4)
        compiled, runs = counter.compiled, counter.runs
        utd_update(agent, store.sample(64), 4)
        assert counter.compiled == compiled and counter.runs - runs == 5


@pytest.mark.parametrize("name", sorted(SMALL))
def test_dynamo_sees_no_graph_break(name):
    agent, store = _agent(name)
    agent.enable_compile(backend="eager")  # switches dynamo's autograd tracing on
    method = type(agent).iteration.__get__(agent)
    batch = store.sample(32)
    agent.num_updates = 1  # the coming update is the second: the TD3 family's delayed actor step runs in it
    inputs = agent.prepare(batch)
    assert name not in ("td3bc", "prdc", "a2pr", "rebrac") or "bc_target" in inputs
    explanation = torch._dynamo.explain(method)(batch, inputs)
    assert explanation.graph_break_count == 0, [b.reason for b in explanation.break_reasons]
    assert explanation.graph_count == 1


@pytest.mark.parametrize("name", sorted(SMALL))
def test_compiled_updates_compute_the_eager_losses(name):
    eager, store = _agent(name)
    captured = copy.deepcopy(eager)
    captured.enable_compile(backend="aot_eager")  # the captured forward-backward-optimiser graph, eager kernels
    for step in range(3):
        torch.manual_seed(step)
        batch = store.sample(32)
        torch.manual_seed(100 + step)
        expected = eager.update(batch)
        torch.manual_seed(100 + step)
        got = captured.update(batch)
        assert expected.keys() == got.keys()
        for key in expected:
            torch.testing.assert_close(got[key], expected[key], rtol=1e-4, atol=1e-5, msg=f"{name} {key} step {step}")
    for p, q in zip(eager.parameters(), captured.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


def test_inductor_update_matches_eager():
    """The default backend, compiled to C++ kernels (random draws as eager's, so the numbers are comparable)."""
    eager, store = _agent("td3bc")
    compiled = copy.deepcopy(eager)
    compiled.enable_compile()
    with torch._inductor.config.patch(fallback_random=True):
        for step in range(4):
            batch = store.sample(32)
            torch.manual_seed(step)
            expected = eager.update(batch)
            torch.manual_seed(step)
            got = compiled.update(batch)
            torch.testing.assert_close(got["critic_loss"], expected["critic_loss"], rtol=1e-4, atol=1e-5)
    for p, q in zip(eager.parameters(), compiled.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)
