"""Configuration values are checked from the configs themselves: for every numeric field of every config (the run's
top-level keys, the trainer, the dataset with its goal relabelling, synthetic data, every registered agent, and the
trajectory model's run), a negative, zero, nan, infinite or huge value is either refused with one line naming the
key or accepted, and the accepted ones train. Through the command line a refused value exits with status 2 and one
line, before any run directory exists."""

from __future__ import annotations

import math
import types
import typing
from dataclasses import fields, is_dataclass

import pytest
import torch

from offrl.agents import AGENTS, make_agent
from offrl.cli import main
from offrl.core.config import MAX_WIDTH, typed
from offrl.core.errors import ConfigError
from offrl.data.batches import StoreSampler
from offrl.data.sources import DatasetConfig
from offrl.data.store import TransitionStore
from offrl.diffusion.trajectory import TrajectoryModelConfig
from offrl.training.diffusion import DiffusionRun
from offrl.training.run import RunConfig
from offrl.training.trainer import TrainerConfig
from tests.conftest import FAST, SMALL_SIZE

# (config class, the key its fields live under, the values it needs besides the one under test)
CONFIGS = [(RunConfig, "", {}), (TrainerConfig, "trainer", {}), (DatasetConfig, "dataset", {}),
           *((cls.config_class, "agent", {"name": name}) for name, cls in AGENTS.items()),
           (TrajectoryModelConfig, "", {}), (DiffusionRun, "", {"dataset": "idp-mixed"})]
EXTREMES = {int: [-1, 0, math.nan, math.inf, 2**62], float: [-1.0, 0.0, math.nan, math.inf, 1e30]}
NEVER = {"nan", "inf", str(2**62)}  # no field takes a non-finite number or an integer this large


def numeric_fields(cls: type, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], type, bool]]:
    """(path, int or float, is a list) of every numeric field of dataclass ``cls``, nested dataclasses included;
    an Optional field counts as its type."""
    found = []
    for f in fields(cls):
        hint = typing.get_type_hints(cls)[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
            hint = args[0]
        if is_dataclass(hint):
            found += numeric_fields(hint, (*prefix, f.name))
        elif hint in (int, float):
            found.append(((*prefix, f.name), hint, False))
        elif typing.get_origin(hint) is list and typing.get_args(hint)[0] in (int, float):
            found.append(((*prefix, f.name), typing.get_args(hint)[0], True))
    return found


def nested(path: tuple[str, ...], value) -> dict:
    node = value
    for name in reversed(path):
        node = {name: node}
    return node


def merged(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merged(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


FIELDS = [(cls, where, base, path, kind, is_list) for cls, where, base in CONFIGS
          for path, kind, is_list in numeric_fields(cls)]


def _id(case) -> str:
    cls, where, base, path, _, _ = case
    return f"{base.get('name', cls.__name__)}:{'.'.join(path)}"


def test_every_config_and_field_is_enumerated():
    keys = {(base.get("name", cls.__name__), ".".join(path)) for cls, _, base, path, _, _ in FIELDS}
    assert {name for name, _ in keys} >= set(AGENTS) | {"RunConfig", "TrainerConfig", "DatasetConfig",
                                                       "TrajectoryModelConfig", "DiffusionRun"}
    for expected in [("RunConfig", "seed"), ("RunConfig", "seeds"), ("RunConfig", "synthetic.horizon"),
                     ("DatasetConfig", "relabel.policy.geometric"), ("TrainerConfig", "updates_per_step"),
                     ("td3bc", "hidden_dims"), ("iql", "actor_lr_schedule_steps"), ("expo", "decay_steps")]:
        assert expected in keys


def _agent_trains(cfg) -> None:
    """One update of the agent ``cfg`` configures, on a small random dataset."""
    torch.manual_seed(0)
    agent = make_agent(cfg, 3, 2)
    store = TransitionStore(3, 2, 64, "cpu")
    g = torch.Generator().manual_seed(0)
    store.add(torch.randn(64, 3, generator=g), torch.rand(64, 2, generator=g) * 2 - 1, torch.randn(64, generator=g),
              torch.randn(64, 3, generator=g), torch.zeros(64), torch.zeros(64))
    store.columns = {"next_actions": torch.rand(64, 2, generator=g) * 2 - 1,  # the optional columns agents read
                     "returns": torch.randn(64, generator=g)}
    agent.attach_dataset(store)
    agent.update(StoreSampler(store).sample(16))


def _small(cls: type) -> dict:
    """Every width of ``cls`` at 8 (the agents' defaults are paper-sized)."""
    small = {}
    for f in fields(cls):
        rule = f.metadata.get("rule")
        item = getattr(rule, "item", rule)
        if getattr(item, "high", None) == MAX_WIDTH and f.default is not None:
            small[f.name] = [8] if getattr(rule, "item", None) is not None else 8
    return small


@pytest.mark.parametrize("case", FIELDS, ids=[_id(c) for c in FIELDS])
def test_extreme_values_are_refused_in_one_line_naming_the_key_or_accepted(case):
    cls, where, base, path, kind, is_list = case
    key = ".".join((where, *path)) if where else ".".join(path)
    for value in EXTREMES[kind]:
        given = [value] if is_list else value
        try:
            typed(cls, merged(base, nested(path, given)), where)
        except ConfigError as err:
            text = str(err)
            assert "\n" not in text and key in text, (value, text)
            continue
        assert str(value) not in NEVER, f"{key}={value} was accepted"
        if where == "agent":  # an accepted value trains (at small widths; the value under test wins)
            _agent_trains(typed(cls, merged(merged(base, _small(cls)), nested(path, given)), where))


@pytest.mark.parametrize("name", list(AGENTS))
def test_a_config_instance_is_checked_by_make_agent(name):
    cfg = AGENTS[name].config_class()
    cfg.hidden_dims = [0]
    with pytest.raises(ConfigError, match=r"^agent\.hidden_dims=\[0\]: expected a non-empty list"):
        make_agent(cfg, 3, 2)


# ---------------------------------------------------------------------- the command line
REFUSED = [
    ("seed=-1", "seed=-1: expected an integer from 0 to 4,294,967,295"),
    (f"seed={2**32}", f"seed={2**32}: expected an integer from 0 to 4,294,967,295"),
    ("agent.actor_lr=nan", "agent.actor_lr=nan: expected a positive finite number"),
    ("device=mps", "device=mps but torch sees no MPS device"),
    ("trainer.steps=many", "trainer.steps=many"),
    ("agent.hidden_dims=[64,100000]", "agent.hidden_dims=[64, 100000]: expected a non-empty list, each a positive "
                                      "integer at most 16,384"),
    ("dataset.relabel.policy.geometric=1.0", "dataset.relabel.policy.geometric=1.0: expected a number in (0, 1)"),
]


@pytest.mark.parametrize("override, message", REFUSED, ids=[o for o, _ in REFUSED])
def test_cli_refuses_a_bad_value_in_one_line_with_exit_2_and_no_run_directory(tmp_path, capsys, monkeypatch,
                                                                             override, message):
    if override == "device=mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has an MPS device")
    monkeypatch.chdir(tmp_path)  # Hydra's default output directories would appear here
    run = tmp_path / "run"
    # the override after the FAST ones, and given twice for trainer.steps: Hydra applies every override in turn
    extra = ["trainer.steps=2"] if override.startswith("trainer.steps") else []
    code = main(["train", *FAST, "trainer.steps=2", override, *extra, "threads=1", f"hydra.run.dir={run}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert list(tmp_path.iterdir()) == []  # no run directory, no Hydra outputs


def test_cli_diffusion_train_refuses_a_bad_value_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["diffusion", "train", "dataset=idp-mixed", "lr=-1", f"dir={tmp_path / 'model'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == "offrl: error: lr=-1.0: expected a positive finite number"
    assert list(tmp_path.iterdir()) == []


# accepted values at the edges of their ranges, together covering every config class a run reads
EDGES = ["seed=4294967295", "trainer.batch_size=1", f"trainer.log_every={10**12}", "trainer.checkpoint_every=1",
         "trainer.warmup_steps=0", "trainer.offline_fraction=0", "dataset.reward_shift=-1", "dataset.reward_scale=0",
         "dataset.ref_max_score=1e30", "dataset.relabel.threshold=0", "dataset.relabel.p_current=1",
         "dataset.relabel.p_trajectory=0", "synthetic.guidance_coef=1e30", "synthetic.share=1",
         "agent.discount=0", "agent.tau=1", "agent.alpha=0", "agent.policy_noise=0", "agent.noise_clip=0",
         f"agent.policy_freq={10**12}"]


def test_cli_accepted_edge_values_end_in_a_run(tmp_path, capsys, small_default_dataset):
    run = tmp_path / "run"
    code = main(["train", *FAST, "trainer.steps=3", "trainer.eval_every=3", "trainer.eval_episodes=1", *EDGES,
                 "threads=1", f"hydra.run.dir={run}"])
    assert code == 0, capsys.readouterr().err
    assert (run / "results.json").is_file()


def _zeros(name: str) -> list[str]:
    """``agent.<field>=0`` for every numeric field of agent ``name`` that takes 0."""
    cls, zeros = AGENTS[name].config_class, []
    for path, kind, is_list in numeric_fields(cls):
        try:
            typed(cls, {"name": name, **nested(path, [kind(0)] if is_list else kind(0))}, "agent")
        except ConfigError:
            continue
        zeros.append(f"agent.{'.'.join(path)}=0")
    return zeros


@pytest.mark.parametrize("name", list(AGENTS))
def test_cli_every_agent_trains_with_its_fields_at_zero_where_accepted(tmp_path, capsys, small_default_dataset,
                                                                       name):
    small = [f"agent.{key}={value}" for key, value in _small(AGENTS[name].config_class).items()]
    run = tmp_path / "run"
    code = main(["train", f"agent={name}", "dataset=idp-mixed", *FAST, *small, *_zeros(name),
                 "env=InvertedDoublePendulum-v5", "trainer.steps=3", "trainer.eval_every=3", "trainer.eval_episodes=1",
                 "trainer.warmup_steps=0", "trainer.pretrain_steps=3", "trainer.utd=1", "trainer.batch_size=16",
                 "threads=1",
                 f"hydra.run.dir={run}"])
    assert code == 0, capsys.readouterr().err
    assert (run / "results.json").is_file()


def test_cli_online_edge_values_end_in_a_run(tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", "agent=sac", "agent.hidden_dims=[16]", "env=InvertedDoublePendulum-v5", "device=cpu",
                 "trainer.steps=4", "trainer.eval_every=4", "trainer.eval_episodes=1", "trainer.warmup_steps=0",
                 "trainer.updates_per_step=0", "trainer.buffer_size=1", "agent.target_entropy=-1e30",
                 "agent.init_temperature=1e30", "threads=1", f"hydra.run.dir={run}"])
    assert code == 0, capsys.readouterr().err
    assert (run / "results.json").is_file()


def test_cli_diffusion_edge_values_end_in_a_run(tmp_path, capsys, small_default_dataset):
    out = tmp_path / "model"
    code = main(["diffusion", "train", "dataset=idp-mixed", f"size={SMALL_SIZE}", f"dir={out}", "preset=cpu",
                 "steps=2", "features=8", "groups=1", "batch_size=1", "seed=4294967295", "val_fraction=0",
                 "warmup_fraction=0", "warmup_init=0", "ema_decay=1", "s_churn=0",
                 "checkpoint_every=1", "threads=1"])
    assert code == 0, capsys.readouterr().err
    assert (out / "model.pt").is_file()
