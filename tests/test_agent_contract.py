"""The agent contract holds for every agent without exceptions (offrl/agents/base.py), and the optimiser's
reliance on torch's private API (offrl/core/optim.py) fails loudly when a torch release changes it."""

from __future__ import annotations

import ast
import inspect
import re
import sys
from pathlib import Path

import pytest
import torch
import torch.optim.adam as torch_adam

import offrl.agents
import offrl.core.optim
from offrl.agents import AGENTS, Agent, make_agent
from offrl.core.optim import ADAM_KEYWORDS, INIT_GROUP_PARAMETERS, Adam, TorchAPIError, adam, check_torch_api
from offrl.data.store import COLUMNS, Batch, TransitionStore

AGENT_FILES = sorted(Path(offrl.agents.__file__).parent.glob("*.py"))
OBS, ACT = 4, 2
SMALL = {
    "bc": {"hidden_dims": [8]},
    "td3bc": {"hidden_dims": [8]},
    "prdc": {"hidden_dims": [8]},
    "a2pr": {"hidden_dims": [8], "critic_hidden_dims": [8], "vae_hidden_dims": [8]},
    "rebrac": {"hidden_dims": [8]},
    "odice": {"hidden_dims": [8], "value_hidden_dims": [8]},
    "iql": {"hidden_dims": [8]},
    "cql": {"hidden_dims": [8], "cql_n_actions": 2},
    "calql": {"hidden_dims": [8], "cql_n_actions": 2},
    "fql": {"hidden_dims": [8], "critic_hidden_dims": [8], "flow_steps": 2},
    "sac": {"hidden_dims": [8]},
    "pmoe": {"hidden_dims": [8]},
    "expo": {"hidden_dims": [8], "num_qs": 2, "num_min_qs": 2, "num_samples": 2, "num_edit_samples": 2,
             "base_hidden": 8, "base_blocks": 1, "base_block_hidden": 8, "time_features": 4, "time_hidden": 8,
             "diffusion_steps": 2},
}


def _batch(n: int = 8) -> Batch:
    """Random transitions with every optional column (an agent reads those it declares)."""
    g = torch.Generator().manual_seed(0)
    return Batch(torch.randn(n, OBS, generator=g), torch.rand(n, ACT, generator=g) * 2 - 1,
                 torch.randn(n, generator=g), torch.randn(n, OBS, generator=g), torch.zeros(n),
                 next_actions=torch.rand(n, ACT, generator=g) * 2 - 1, returns=torch.randn(n, generator=g))


def _agent(name: str) -> Agent:
    torch.manual_seed(0)
    agent = make_agent({"name": name, **SMALL[name]}, OBS, ACT)
    b, store = _batch(32), TransitionStore(OBS, ACT, 32)
    store.add(b.obs, b.actions, b.rewards, b.next_obs, b.dones, torch.zeros(32, dtype=torch.bool))
    agent.attach_dataset(store)
    return agent


def _parameters(method) -> list[tuple[str, inspect._ParameterKind, object]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(method).parameters.values()]


def test_every_agent_is_covered():
    assert set(SMALL) == set(AGENTS)


def test_the_update_contract():
    """One update: before_update, prepare (host side) -> inputs, iteration(batch, inputs) (the captured region)."""
    contract = {"update": ["self", "batch"], "prepare": ["self", "batch"], "iteration": ["self", "batch", "inputs"],
                "host_metrics": ["self"], "before_update": ["self"], "critic_step": ["self", "batch"],
                "policy_step": ["self", "batch"], "critic_update": ["self", "batch"],
                "policy_update": ["self", "batch"], "pretrain_update": ["self", "batch"]}
    for method, names in contract.items():
        assert [p[0] for p in _parameters(getattr(Agent, method))] == names, method


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_overrides_keep_the_base_parameters(name):
    """Every public method of Agent that an agent class (or a parent below Agent) overrides has the base's
    parameters: names, kinds and defaults."""
    public = {n: f for n, f in inspect.getmembers(Agent, inspect.isfunction) if not n.startswith("_")}
    for cls in AGENTS[name].__mro__:
        if cls is Agent or not issubclass(cls, Agent):
            continue
        for method, base in public.items():
            if method in vars(cls):
                assert _parameters(vars(cls)[method]) == _parameters(base), (
                    f"{cls.__name__}.{method}{inspect.signature(vars(cls)[method])} overrides "
                    f"Agent.{method}{inspect.signature(base)} with other parameters")
        assert "update" not in vars(cls), f"{cls.__name__} overrides Agent.update: use prepare/iteration/host_metrics"


@pytest.mark.parametrize("path", AGENT_FILES, ids=lambda p: p.name)
def test_agent_sources_bend_no_contract(path):
    """No override silenced for the type checker, no parent constructor skipped by super(Cls, self), no
    import inside a function."""
    source = path.read_text()
    assert "type: ignore[override]" not in source
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super":
            assert not node.args, f"{path.name}:{node.lineno}: super() with arguments skips a class of the MRO"
    top = set(tree.body)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            assert node in top, f"{path.name}:{node.lineno}: imports belong at the top of the module"


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_supports_utd_exactly_when_critic_and_policy_steps_run(name):
    """The UTD schedule's calls on a tiny batch: critic_update per minibatch, policy_update once."""
    agent = _agent(name)
    batch = _batch()
    try:
        metrics = [agent.critic_update(batch), agent.critic_update(batch), agent.policy_update(batch)]
        runs = True
    except NotImplementedError:
        runs = False
    assert agent.supports_utd() == runs, f"{name}: supports_utd() is {agent.supports_utd()}, the steps run: {runs}"
    if runs:
        assert agent.num_updates == 1
        assert all(isinstance(v, torch.Tensor) for m in metrics for v in m.values())
    assert agent.update(batch)  # the ordinary update runs either way


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_declared_dataset_columns_exist(name):
    """Agent.dataset_columns names columns the data layer can make (offrl.data.store.COLUMNS)."""
    assert set(AGENTS[name].dataset_columns) <= set(COLUMNS)


@pytest.mark.parametrize("name", ["td3bc", "prdc", "a2pr", "rebrac"])
def test_td3_family_runs_the_actor_step_every_policy_freq_updates(name):
    agent = _agent(name)
    steps = [("actor_loss" in agent.update(_batch())) for _ in range(4)]
    assert steps == [False, True, False, True]
    assert float(agent.optimizers["actor"].state_dict()["state"][0]["step"]) == 2


# ---------------------------------------------------------------------------------------------- the optimiser
def test_core_optim_imports_only_torch_and_core():
    tree = ast.parse(Path(offrl.core.optim.__file__).read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            for module in names:
                root = module.split(".")[0]
                assert root in ("torch", "__future__") or module.startswith("offrl.core") or (
                    root in sys.stdlib_module_names), f"offrl.core.optim imports {module}"


def test_torch_has_the_private_api_offrl_core_optim_relies_on():
    """Fails, naming the torch version, when a torch release changes Adam._init_group or the functional adam."""
    check_torch_api()
    assert tuple(inspect.signature(torch.optim.Adam._init_group).parameters) == INIT_GROUP_PARAMETERS
    assert set(ADAM_KEYWORDS) <= set(inspect.signature(torch_adam.adam).parameters)


@pytest.mark.parametrize("kwargs", [{}, {"amsgrad": True}], ids=["adam", "amsgrad"])
def test_initial_state_is_torch_adams(kwargs):
    """The state built at construction is what torch.optim.Adam holds after its first step on zero gradients
    (the same tensors, zero moments), one step earlier."""
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(3, 2)), torch.nn.Parameter(torch.randn(()))]
    ours = Adam(params, lr=1e-3, fused=True, **kwargs)
    stock = torch.optim.Adam([torch.nn.Parameter(p.detach().clone()) for p in params], lr=1e-3, fused=True, **kwargs)
    for p in stock.param_groups[0]["params"]:
        p.grad = torch.zeros_like(p)
    stock.step()
    changed = f"torch {torch.__version__} changed the state torch.optim.Adam builds: update offrl.core.optim.Adam"
    for p, q in zip(params, stock.param_groups[0]["params"]):
        mine, theirs = ours.state[p], stock.state[q]
        assert set(mine) == set(theirs), changed
        for key in theirs:
            assert (mine[key].dtype, mine[key].device, mine[key].shape) == (
                theirs[key].dtype, theirs[key].device, theirs[key].shape), f"{changed} ({key})"
        assert float(mine["step"]) == float(theirs["step"]) - 1 == 0, changed
        for key in set(theirs) - {"step"}:
            assert torch.equal(mine[key], theirs[key]), f"{changed} ({key})"


def test_a_changed_private_api_is_named(monkeypatch):
    def init_group(self, group, params, grads):  # a torch release with other parameters
        return False

    monkeypatch.setattr(torch.optim.Adam, "_init_group", init_group)
    message = re.escape(f"torch {torch.__version__} changed the private API offrl.core.optim relies on")
    with pytest.raises(TorchAPIError, match=message):
        adam([torch.nn.Parameter(torch.zeros(2))], 1e-3)
    monkeypatch.delattr(torch.optim.Adam, "_init_group")
    with pytest.raises(TorchAPIError, match=message):
        check_torch_api()
    monkeypatch.undo()
    monkeypatch.setattr(torch_adam, "adam", lambda params, grads, lr: None)
    with pytest.raises(TorchAPIError, match="lacks the keywords"):
        check_torch_api()


@pytest.mark.parametrize("kwargs", [{}, {"weight_decay": 0.1}, {"weight_decay": 0.1, "decoupled_weight_decay": True},
                                    {"amsgrad": True}, {"maximize": True}],
                         ids=["adam", "l2", "adamw", "amsgrad", "maximize"])
def test_steps_equal_torch_adams(kwargs):
    """Adam.step is torch.optim.Adam.step: bit for bit against the same fused kernel, to rounding against the
    default (foreach) implementation, over a first and later steps."""
    torch.manual_seed(0)
    start = [torch.randn(4, 3), torch.randn(3)]
    grads = [[torch.randn_like(p) for p in start] for _ in range(3)]

    def run(make):
        params = [torch.nn.Parameter(p.clone()) for p in start]
        opt = make(params)
        for g in grads:
            for p, gp in zip(params, g):
                p.grad = gp.clone()
            opt.step()
        return params

    ours = run(lambda ps: adam(ps, 1e-2, **kwargs))
    fused = run(lambda ps: torch.optim.Adam(ps, lr=1e-2, fused=True, **kwargs))
    default = run(lambda ps: torch.optim.Adam(ps, lr=1e-2, **kwargs))
    for p, q, r in zip(ours, fused, default):
        assert torch.equal(p, q)
        torch.testing.assert_close(p, r)
