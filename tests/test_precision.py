"""precision=bf16|tf32|auto (offrl.core.precision, offrl.core.runtime.resolve_precision): every agent updates under
bf16 autocast with fp32 weights, optimiser state, network outputs and metrics; compiled as one graph; with a seed
axis and the UTD schedule; bad values are one line, exit 2, nothing written; checkpoints stay fp32 and resume
exactly."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from offrl.cli import main
from offrl.core import checkpoint, runtime
from offrl.core.precision import Precision, fp32_metrics, is_fp32_output, output_layers
from offrl.core.runtime import resolve_precision
from offrl.training.seeds import SeedBatches, stack_agents
from offrl.training.trainer import utd_update
from tests.conftest import FAST
from tests.test_compile import SMALL, GraphCounter, _agent

BF16 = Precision("bf16", "cpu")
MATMULS = {"mm", "addmm", "bmm", "baddbmm"}


class MatmulDtypes(TorchDispatchMode):
    """Records the dtype of every matrix product's output."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[torch.dtype] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.overloadpacket.__name__ in MATMULS:
            self.seen.add(out.dtype)
        return out


def _all_fp32(agent) -> None:
    for name, p in agent.named_parameters():
        assert p.dtype == torch.float32, name
    for opt_name, opt in agent.optimizers.items():
        for state in opt.state.values():
            for key, value in state.items():
                if torch.is_tensor(value) and value.is_floating_point():
                    assert value.dtype == torch.float32, (opt_name, key)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_every_agent_updates_in_bf16_with_fp32_weights_optimiser_outputs_and_metrics(name):
    agent, store = _agent(name)
    before = [p.detach().clone() for p in agent.parameters()]
    BF16.prepare(agent)
    assert output_layers(agent) and all(is_fp32_output(layer) for layer in output_layers(agent))
    recorder = MatmulDtypes()
    with recorder, BF16.autocast():
        for _ in range(3):  # TD3's delayed actor step runs in the second
            metrics = fp32_metrics(agent.update(store.sample(32)))
        if agent.supports_utd():
            metrics.update(fp32_metrics(utd_update(agent, store.sample(64), 2)))
    assert torch.bfloat16 in recorder.seen, "no matmul ran in bf16"
    for key, value in metrics.items():
        assert value.dtype == torch.float32 and torch.isfinite(value).all(), (key, value)
    _all_fp32(agent)
    assert any(not torch.equal(p, q) for p, q in zip(agent.parameters(), before))
    obs = store.sample(4).obs
    with BF16.autocast():  # the networks' outputs (here the actions) come out of fp32 layers
        assert agent.act(obs).dtype == torch.float32


def test_bf16_outputs_are_fp32_layers_and_state_dict_keys_are_unchanged():
    agent, store = _agent("iql")
    plain = copy.deepcopy(agent)
    keys = list(agent.state_dict())
    BF16.prepare(agent)
    assert list(agent.state_dict()) == keys
    batch = store.sample(16)
    with torch.no_grad():
        torch.testing.assert_close(agent.value(batch.obs), plain.value(batch.obs), rtol=0, atol=0)  # no autocast
        with BF16.autocast():
            value, q = agent.value(batch.obs), agent.critic(batch.obs, batch.actions)
            assert agent.value[0](batch.obs).dtype == torch.bfloat16  # a hidden layer
        assert value.dtype == q.dtype == torch.float32  # an mlp's output layer, an ensemble's
        torch.testing.assert_close(value, plain.value(batch.obs), rtol=0.05, atol=0.02)
        torch.testing.assert_close(q, plain.critic(batch.obs, batch.actions), rtol=0.05, atol=0.02)
        copied = copy.deepcopy(agent)  # target networks are deep copies: they keep the fp32 output layers
        assert all(is_fp32_output(layer) for layer in output_layers(copied))


def test_a_weight_stepped_inside_the_context_is_read_anew():
    """torch.autocast caches a weight's bf16 copy until the context ends; an update steps its optimisers inside it
    (TD3's critic step, then its actor step reads the critic; the UTD schedule's critic steps), so offrl's context
    must not cache."""
    x, w = torch.randn(4, 8), torch.nn.Parameter(torch.randn(3, 8))
    with BF16.autocast():
        before = torch.nn.functional.linear(x, w)
        with torch.no_grad():
            w.add_(1.0)
        assert not torch.equal(torch.nn.functional.linear(x, w), before)


def test_compiled_bf16_update_is_one_graph(fresh_compiler):
    agent, store = _agent("td3bc")
    BF16.prepare(agent)
    counter = GraphCounter()
    agent.enable_compile(backend=counter)
    with BF16.autocast():
        for _ in range(4):
            agent.update(store.sample(32))
        compiled, runs = counter.compiled, counter.runs
        for _ in range(4):
            metrics = fp32_metrics(agent.update(store.sample(32)))
    assert counter.compiled == compiled, "an update recompiled"
    assert counter.runs - runs == 4, "graph breaks"
    assert all(torch.isfinite(v).all() for v in metrics.values())
    _all_fp32(agent)


def test_seed_axis_in_bf16():
    agents = []
    for seed in range(2):
        torch.manual_seed(seed)
        agent, store = _agent("td3bc")
        agents.append(agent)
    stacked = stack_agents(agents)
    BF16.prepare(stacked)
    assert all(is_fp32_output(layer) for layer in output_layers(stacked))
    batches = SeedBatches(store, [0, 1])
    with BF16.autocast():
        for _ in range(2):
            metrics = fp32_metrics(stacked.update(batches.sample(16)))
    assert all(v.shape == (2,) and v.dtype == torch.float32 and torch.isfinite(v).all() for v in metrics.values())
    _all_fp32(stacked)


def test_auto_takes_bf16_only_where_measured_faster(monkeypatch):
    cpu = torch.device("cpu")
    lines = []
    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"avx2"})  # a CPU without bf16 arithmetic: nothing measured
    monkeypatch.setattr(runtime, "bf16_speedup", lambda device: pytest.fail("measured without bf16 instructions"))
    assert resolve_precision("auto", cpu, lines.append).name == "fp32"
    assert "precision=auto: fp32 (this CPU" in lines[-1] and "no bf16 instructions" in lines[-1]
    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"avx512_bf16"})
    monkeypatch.setattr(runtime, "bf16_speedup", lambda device: 1.05)  # bf16 units, no faster: fp32
    assert resolve_precision("auto", cpu, lines.append).name == "fp32" and "1.05x" in lines[-1]
    monkeypatch.setattr(runtime, "bf16_speedup", lambda device: 2.0)
    assert resolve_precision("auto", cpu, lines.append).name == "bf16" and "2.0x" in lines[-1]
    assert resolve_precision("fp32", cpu, lines.append).name == "fp32" and len(lines) == 3  # only auto prints


def test_auto_reports_its_choice_on_this_cpu():
    lines = []
    chosen = resolve_precision("auto", torch.device("cpu"), lines.append)
    assert chosen.name in ("fp32", "bf16") and len(lines) == 1 and f"precision=auto: {chosen.name} (" in lines[0]
    if runtime.bf16_unsupported(torch.device("cpu")) is not None:
        assert chosen.name == "fp32"


@pytest.mark.parametrize("value, message", [
    ("fp16", "precision='fp16': expected one of fp32, bf16, tf32, auto"),
    ("tf32", "precision=tf32: TF32 is a mode of CUDA tensor cores and this run is on cpu"),
    ("bf16", "precision=bf16: this CPU ("),
])
def test_bad_precision_is_one_line_exit_2_and_nothing_written(tmp_path, monkeypatch, capsys, value, message):
    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"avx2"})  # bf16: a CPU without bf16 arithmetic
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    assert main(["train", *FAST, f"precision={value}", f"hydra.run.dir={run}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not run.exists() and not list(tmp_path.iterdir())


def test_bf16_checkpoints_are_fp32_and_resume_exactly(tmp_path, small_default_dataset):
    args = [*FAST, "agent.hidden_dims=[32,32]", "precision=bf16", "trainer.checkpoint_every=20",
            "trainer.eval_every=20", "trainer.log_every=10", "threads=1", "seed=3"]
    reference, split = tmp_path / "reference", tmp_path / "split"
    assert main(["train", *args, "trainer.steps=40", f"hydra.run.dir={reference}"]) == 0
    assert main(["train", *args, "trainer.steps=20", f"hydra.run.dir={split}"]) == 0
    assert main(["train", f"resume={split}", "trainer.steps=40"]) == 0
    expected, got = (checkpoint.load(d / "checkpoints" / "last.pt") for d in (reference, split))
    floats = [(k, v) for k, v in expected["agent"].items() if torch.is_tensor(v) and v.is_floating_point()]
    assert floats and all(v.dtype == torch.float32 for _, v in floats)
    for opt in expected["optimizers"].values():
        for state in opt["state"].values():
            assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())
    for key, value in expected["agent"].items():
        if torch.is_tensor(value):
            torch.testing.assert_close(got["agent"][key], value, rtol=0, atol=0, msg=key)
    assert json.loads((reference / "results.json").read_text())["precision"] == "bf16"
    assert main(["train", f"resume={split}", "trainer.steps=50", "precision=fp32"]) == 0  # a resume may change it
    assert json.loads((split / "results.json").read_text())["precision"] == "fp32"


def test_seeds_in_one_process_train_in_bf16(tmp_path, small_default_dataset):
    run = tmp_path / "run"
    assert main(["train", *FAST, "agent.hidden_dims=[32,32]", "precision=bf16", "seeds=[0,1]", "trainer.steps=20",
                 "trainer.eval_every=20", "trainer.log_every=10", "threads=1", f"hydra.run.dir={run}"]) == 0
    for seed in (0, 1):
        results = json.loads((run / f"seed_{seed}" / "results.json").read_text())
        assert results["precision"] == "bf16" and results["steps"] == 20
