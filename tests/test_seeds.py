"""Many seeds in one process: a seed trained inside a K-seed stack follows the losses and parameters of the
same seed trained alone."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from offrl.agents import AGENTS, make_agent
from offrl.core.errors import ConfigError
from offrl.data.arrays import DatasetInfo, OfflineData
from offrl.data.store import TransitionStore
from offrl.training.seeds import SeedBatches, seed_state_dict, stack_agents
from tests.test_compile import GraphCounter

OBS, ACT = 5, 2
CONFIGS = {
    "bc": {"hidden_dims": [16, 16]},
    "td3bc": {"hidden_dims": [16, 16]},
    "prdc": {"hidden_dims": [16, 16]},
    "iql": {"hidden_dims": [16, 16]},
    "iql_deterministic": {"name": "iql", "hidden_dims": [16, 16], "policy": "deterministic"},
    "gciql": {"name": "iql", "hidden_dims": [16, 16], "layer_norm": True, "extraction": "ddpgbc",  # OGBench's GCIQL
              "log_std_min": 0.0, "log_std_max": 0.0},
    "a2pr": {"hidden_dims": [16], "critic_hidden_dims": [16], "vae_hidden_dims": [16]},
    "rebrac": {"hidden_dims": [16, 16]},  # LayerNorm critics: per-member, per-seed affine parameters
    "odice": {"hidden_dims": [16, 16], "value_hidden_dims": [16, 16]},  # per-seed orthogonal projection
    "cql_lagrange": {"name": "cql", "hidden_dims": [16, 16], "cql_n_actions": 3, "cql_lagrange": True,
                     "cql_max_target_backup": True, "backup_entropy": True},  # per-seed alpha and alpha'
    "calql": {"hidden_dims": [16, 16], "cql_n_actions": 3},  # the rows' returns-to-go as the floor
    "fql": {"hidden_dims": [16, 16], "critic_hidden_dims": [16, 16], "flow_steps": 3},  # per-seed noise of 4 draws
    "fql_min_normalized": {"name": "fql", "hidden_dims": [16], "critic_hidden_dims": [16], "flow_steps": 2,
                           "q_agg": "min", "normalize_q_loss": True},  # per-seed lambda
    "odice_single_head": {"name": "odice", "hidden_dims": [16], "value_hidden_dims": [16], "twin_value": False,
                          "value_layer_norm": False},
}
SEEDS = [3, 0, 7]


def _data() -> OfflineData:
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(300, OBS)).astype(np.float32)
    return OfflineData(obs, rng.uniform(-1, 1, (300, ACT)).astype(np.float32), rng.normal(size=300).astype(np.float32),
                       obs + 0.1, rng.random(300) < 0.1, np.arange(300) % 50 == 49, DatasetInfo("t", "test", "test"))


def _agent(key: str, seed: int, store: TransitionStore):
    cfg = {"name": key, **CONFIGS[key]}
    torch.manual_seed(seed)
    agent = make_agent(cfg, OBS, ACT)
    agent.attach_dataset(store)
    return agent


@pytest.mark.parametrize("key", sorted(CONFIGS))
def test_a_seed_in_a_stack_follows_the_same_seed_alone(key):
    data = _data()
    columns = AGENTS[CONFIGS[key].get("name", key)].dataset_columns  # what the agent reads (ReBRAC's next actions)
    stores = {s: TransitionStore.from_data(data, seed=s, columns=columns, discount=0.99) for s in SEEDS}
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


def test_stacked_update_is_one_compiled_graph(fresh_compiler):
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


# ---------------------------------------------------------------------- offrl train seeds=[...]
from offrl.cli import main  # noqa: E402
from offrl.core import checkpoint  # noqa: E402
from offrl.tools.evaluation import load_policy  # noqa: E402
from offrl.tools.report import find_runs  # noqa: E402
from tests.conftest import FAST  # noqa: E402

TRAIN = [*FAST, "trainer.eval_every=20", "trainer.log_every=10", "trainer.checkpoint_every=10", "threads=1"]


def _results(run_dir):
    import json

    return json.loads((run_dir / "results.json").read_text())


@pytest.mark.parametrize("agent", ["td3bc", "odice"])
def test_seeds_in_one_process_train_each_seed_as_alone(tmp_path, small_default_dataset, agent):
    """offrl train seeds=[...] writes a run directory per seed holding what a lone run holds, and each seed
    trains, evaluates and checkpoints as the same seed trained alone (to float tolerance)."""
    stack = tmp_path / "stack"
    assert main(["train", f"agent={agent}", *TRAIN, "trainer.steps=40", "seeds=[5,2]", f"hydra.run.dir={stack}"]) == 0
    for seed in (5, 2):
        alone = tmp_path / f"alone{seed}"
        assert main(["train", f"agent={agent}", *TRAIN, "trainer.steps=40", f"seed={seed}",
                     f"hydra.run.dir={alone}"]) == 0
        member = stack / f"seed_{seed}"
        got, expected = _results(member), _results(alone)
        assert got["seed"] == seed and got["seeds_in_process"] == 2 and got["steps"] == 40
        assert got["cpu"] == expected["cpu"] != "" and got["torch"] == torch.__version__  # what the floats depend on
        assert [e["step"] for e in got["eval_history"]] == [20, 40]
        for a, b in zip(got["eval_history"], expected["eval_history"]):
            assert a["return_mean"] == pytest.approx(b["return_mean"], rel=1e-3)
        lone_params = checkpoint.load(alone / "checkpoints" / "last.pt")["agent"]
        assert load_policy(member, "last").global_step == 40  # what offrl eval and export load
        assert load_policy(member, "best").global_step in (20, 40)
        seed_params = checkpoint.load(member / "checkpoints" / "last.pt")["agent"]
        for name, value in lone_params.items():
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                torch.testing.assert_close(seed_params[name], value, rtol=1e-3, atol=1e-4, msg=name)
        assert (member / "tb").is_dir() and (member / "config.yaml").is_file()
    runs = find_runs([stack])  # offrl report: the seeds, not the stack directory
    assert sorted((r.path.name, r.seed, r.status) for r in runs) == [("seed_2", 2, "finished"),
                                                                       ("seed_5", 5, "finished")]


def test_seeds_in_one_process_resume_exactly(tmp_path, small_default_dataset):
    """A stack stopped at its checkpoint and resumed ends where the uninterrupted stack ends; a seed directory
    points to its stack instead of resuming alone."""
    args = ["agent=td3bc", *TRAIN, "seeds=[0,1,3]"]
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    assert main(["train", *args, "trainer.steps=40", f"hydra.run.dir={reference}"]) == 0
    assert main(["train", *args, "trainer.steps=20", f"hydra.run.dir={resumed}"]) == 0
    assert main(["train", f"resume={resumed}", "trainer.steps=40"]) == 0
    a, b = (checkpoint.load(d / "checkpoints" / "last.pt") for d in (resumed, reference))
    for name, value in b["agent"].items():
        if isinstance(value, torch.Tensor):
            torch.testing.assert_close(a["agent"][name], value, rtol=0, atol=0, msg=name)
    for seed in (0, 1, 3):
        member = f"seed_{seed}"
        assert _results(resumed / member)["eval_history"] == _results(reference / member)["eval_history"]
    assert main(["train", f"resume={resumed / 'seed_1'}"]) == 2


@pytest.mark.parametrize("overrides, message", [
    (["agent=sac", "env=Pendulum-v1", "seeds=[0,1]"], "trainer.mode=online runs one seed per process"),
    (["agent=sac", "trainer=offline", "seeds=[0,1]"], "cannot train several seeds in one process"),
    (["seeds=[1,1]"], "distinct"),
    (["trainer.utd=2", "seeds=[0,1]"], "trainer.utd=1"),
])
def test_seeds_in_one_process_refuse_what_they_cannot_do(tmp_path, small_default_dataset, capsys, overrides, message):
    run = tmp_path / "run"
    args = [*TRAIN, "trainer.steps=10", *overrides, f"hydra.run.dir={run}"]
    assert main(["train", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not run.exists()
