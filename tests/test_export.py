"""offrl export: every agent's exported policy (TorchScript, ONNX) acts as the agent does.

For each agent a tiny run is trained through the CLI (20 steps: offline agents on the small idp-mixed
data, whose normaliser is fitted, online agents on Pendulum-v1, whose actions are rescaled to [-2, 2]),
exported in both formats, and run on raw observations: the actions must equal the agent's
``act(normalise(obs), deterministic=True)`` passed through gymnasium's own RescaleAction, within
ATOL, for batches of 1 and 50 (the export's example batch has 4 rows).
"""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.wrappers.utils import rescale_box

from offrl.agents import AGENTS
from offrl.cli import main
from offrl.tools.evaluation import load_policy
from offrl.tools.export import ExportedPolicy
from tests.conftest import SMALL_SIZE

ATOL = 1e-5  # measured over 2000 observations: TorchScript <= 1.2e-7 (0 before rescaling), ONNX Runtime <= 2.4e-7
ONLINE = {"sac", "pmoe"}
# EXPO's policy samples diffusion actions and takes an argmax: random even with deterministic=True, so it has no
# export; tests/test_expo.py checks that `offrl export` refuses it in one line.
EXPORTABLE = sorted(set(AGENTS) - {"expo"})
SMALL = {"a2pr": ["agent.critic_hidden_dims=[32,32]", "agent.vae_hidden_dims=[32,32]"],
         "odice": ["agent.value_hidden_dims=[32,32]"],
         "fql": ["agent.critic_hidden_dims=[32,32]", "agent.flow_steps=2"],
         "calql": ["dataset=idp-mixed", "trainer.pretrain_steps=10"]}  # then 20 env steps of its trainer


def train_tiny(agent: str, run_dir) -> None:
    common = [f"agent={agent}", "agent.hidden_dims=[32,32]", *SMALL.get(agent, []), "trainer.steps=20",
              "trainer.eval_every=20", "trainer.eval_episodes=1", "trainer.log_every=10", "device=cpu", "threads=1",
              f"hydra.run.dir={run_dir}"]
    if agent in ONLINE:
        extra = ["env=Pendulum-v1", "trainer.warmup_steps=10", "trainer.batch_size=8"]
    else:
        extra = [f"dataset.size={SMALL_SIZE}", "trainer.batch_size=32"]
    assert main(["train", *common, *extra]) == 0


def env_actions(env_id: str, actions: np.ndarray) -> np.ndarray:
    """What the env receives in training for agent actions in [-1, 1] (offrl.envs.make_vec_env's wrapper)."""
    env = gym.make(env_id)
    space = env.action_space
    if np.allclose(space.low, -1.0) and np.allclose(space.high, 1.0):
        return actions
    ones = np.ones(space.shape, space.dtype)
    wrapper = gym.wrappers.RescaleAction(env, -ones, ones)
    return np.stack([wrapper.action(a) for a in actions])


@pytest.mark.parametrize("agent", EXPORTABLE)
def test_exported_policy_acts_as_the_agent(tmp_path, small_default_dataset, agent):
    run = tmp_path / "run"
    train_tiny(agent, run)
    policy = load_policy(run, "last")
    env_id = policy.run["env_id"]
    space = gym.make(env_id).action_space
    rng = np.random.default_rng(0)
    mean, std = policy.normalizer.mean.numpy(), policy.normalizer.std.numpy()
    obs = (mean + std * rng.normal(size=(51, policy.run["obs_dim"]))).astype(np.float32)
    with torch.no_grad():
        agent_actions = policy.agent.act(policy.normalizer(torch.from_numpy(obs)), deterministic=True).numpy()
    expected = env_actions(env_id, agent_actions)

    ts_path, onnx_path = tmp_path / "policy.pt", tmp_path / "policy.onnx"
    assert main(["export", str(run), "--format", "torchscript", "--out", str(ts_path)]) == 0
    extra = {"offrl.json": ""}
    scripted = torch.jit.load(str(ts_path), _extra_files=extra)
    for batch in (slice(0, 1), slice(1, 51)):
        got = scripted(torch.from_numpy(obs[batch])).numpy()
        np.testing.assert_allclose(got, expected[batch], rtol=0, atol=ATOL)
    embedded = json.loads(extra["offrl.json"])
    assert embedded["agent"] == agent and embedded["env_id"] == env_id

    ort = pytest.importorskip("onnxruntime", reason="ONNX checks need onnxruntime (pip install 'offrl[export]')")
    assert main(["export", str(run), "--format", "onnx", "--out", str(onnx_path)]) == 0
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    for batch in (slice(0, 1), slice(1, 51)):
        got = session.run(["action"], {"obs": obs[batch]})[0]
        np.testing.assert_allclose(got, expected[batch], rtol=0, atol=ATOL)
    props = session.get_modelmeta().custom_metadata_map
    assert props["offrl.agent"] == agent and json.loads(props["offrl"])["env_id"] == env_id

    for path in (ts_path, onnx_path):
        record = json.loads(path.with_name(path.name + ".json").read_text())
        assert record["agent"] == agent and record["env_id"] == env_id and record["offrl_version"]
        assert record["observation_space"]["shape"] == [policy.run["obs_dim"]]
        assert record["action_space"]["shape"] == [policy.run["act_dim"]]
        assert record["action_space"]["low"] == space.low.astype(float).tolist()
        assert record["action_space"]["high"] == space.high.astype(float).tolist()
        assert record["input"]["name"] == "obs" and record["output"]["name"] == "action"
        assert record["verification"]["checked"] and record["verification"]["max_abs_diff"] <= ATOL


def test_rescaling_matches_gymnasium_for_asymmetric_bounds():
    low, high = np.array([-3.0, 0.0, 10.0], np.float32), np.array([1.0, 5.0, 10.5], np.float32)
    module = ExportedPolicy(torch.nn.Identity(), torch.nn.Identity(), low, high)
    actions = np.random.default_rng(0).uniform(-1, 1, (20, 3)).astype(np.float32)
    _, _, to_env = rescale_box(gym.spaces.Box(low, high), -np.ones(3, np.float32),
                                 np.ones(3, np.float32))
    got = module(torch.from_numpy(actions)).numpy()
    np.testing.assert_allclose(got, to_env(actions), rtol=0, atol=ATOL)
    assert got.min() >= low.min() - ATOL and (got <= high + ATOL).all()


def test_export_bad_input_is_one_line(tmp_path, capsys, small_default_dataset):
    run = tmp_path / "run"
    train_tiny("bc", run)
    cases = [
        [str(tmp_path / "missing"), "--format", "onnx"],
        [str(tmp_path), "--format", "torchscript"],  # a directory with no run
        [str(run), "--format", "tflite"],
        [str(run)],  # --format is required
        [str(run), "--format", "torchscript", "--checkpoint", "step_7"],
        [str(run), "--format", "torchscript", "--out", str(tmp_path / "a-file" / "policy.pt")],  # not a directory
    ]
    (tmp_path / "a-file").write_text("")
    for argv in cases:
        capsys.readouterr()
        assert main(["export", *argv]) == 2, argv
        out, err = capsys.readouterr()
        assert out == "" and len(err.strip().splitlines()) == 1 and err.startswith("offrl: error: "), (argv, err)
    assert not list(run.glob("policy_*"))
    # a directory that does not exist yet is created
    made = tmp_path / "new" / "dir" / "policy.pt"
    assert main(["export", str(run), "--format", "torchscript", "--out", str(made)]) == 0 and made.is_file()
    # the default file name, next to the run's checkpoints
    assert main(["export", str(run), "--format", "torchscript", "--checkpoint", "best"]) == 0
    record = json.loads((run / "policy_best.pt.json").read_text())
    assert record["checkpoint"] == "best" and record["file"] == str(run / "policy_best.pt")


def test_export_policy_from_python(tmp_path):
    """An agent trained in Python (no run directory) exports with its normaliser; a wrong env is one line."""
    from offrl.agents import make_agent
    from offrl.core.errors import OffrlError
    from offrl.data import ObsNormalizer
    from offrl.tools.export import export_policy

    torch.manual_seed(0)
    agent = make_agent({"name": "td3bc", "hidden_dims": [16, 16]}, 3, 1)
    normalizer = ObsNormalizer.fit(np.random.default_rng(0).normal(2.0, 3.0, (100, 3)).astype(np.float32))
    state = torch.get_rng_state()
    record = export_policy(agent, normalizer, "Pendulum-v1", tmp_path / "p.pt", provenance={"note": "mine"})
    assert torch.equal(state, torch.get_rng_state()) and agent.training  # the agent is left as it was
    assert record["agent"] == "td3bc" and record["note"] == "mine" and record["verification"]["max_abs_diff"] <= ATOL
    obs = np.random.default_rng(1).normal(2.0, 3.0, (7, 3)).astype(np.float32)
    with torch.no_grad():
        want = env_actions("Pendulum-v1", agent.act(normalizer(torch.from_numpy(obs)), deterministic=True).numpy())
    got = torch.jit.load(str(tmp_path / "p.pt"))(torch.from_numpy(obs)).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)
    with pytest.raises(OffrlError, match=r"MountainCarContinuous-v0: observations of shape \(2,\) do not fit"):
        export_policy(agent, normalizer, "MountainCarContinuous-v0", tmp_path / "q.pt")
    assert not (tmp_path / "q.pt").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_export_policy_of_a_gpu_agent(tmp_path):
    from offrl.agents import make_agent
    from offrl.data import ObsNormalizer
    from offrl.tools.export import export_policy

    agent = make_agent({"name": "sac", "hidden_dims": [16, 16]}, 3, 1, device="cuda")
    normalizer = ObsNormalizer(3).cuda()
    record = export_policy(agent, normalizer, "Pendulum-v1", tmp_path / "p.pt")
    assert record["verification"]["max_abs_diff"] <= ATOL
    assert all(t.device.type == "cuda" for t in agent.parameters())  # the agent itself stays where it was
