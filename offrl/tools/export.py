"""``offrl export <run dir>``: a trained policy as one standalone, deterministic module.

    offrl export <run dir> --format torchscript|onnx [--out FILE] [--checkpoint last|best|step_N]

The module maps raw float32 observations (batch, obs_dim) to env actions (batch, act_dim):

    action = rescale(policy((obs - mean) / std))

with the run's observation normaliser, the agent's deterministic action in [-1, 1]
(``Agent.deterministic_policy``) and the affine map from [-1, 1] onto the env's action bounds (the one
``gymnasium.wrappers.RescaleAction`` applies in training; none where the bounds are already [-1, 1]).
Parameters and normaliser statistics are constants of the file: it needs no offrl to run.

TorchScript (``torch.jit.load``; traced, then frozen so only the policy's weights remain) or ONNX
(``torch.onnx.export``'s torch.export-based exporter, input ``obs``, output ``action``, a dynamic batch
dimension; run with onnxruntime). Next to the file, ``<out>.json`` records what it expects: the
observation and action spaces (shapes, dtypes, bounds; infinite bounds written as "inf"/"-inf"), env
id, agent, checkpoint, offrl version; the same JSON is inside the file (TorchScript extra file
``offrl.json``; ONNX ``metadata_props["offrl"]``). The export is checked against the agent on random
observations before the command returns (the largest difference is in the sidecar).

From Python, ``export_policy(agent, normalizer, env_id, out)`` does the same for an agent trained without a
run directory (an agent on a GPU is exported through a CPU copy); ``export_run`` is the command.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from offrl import __version__
from offrl.agents import make_agent
from offrl.core.checkpoint import check_writable_dir, write_text
from offrl.core.errors import OffrlError
from offrl.core.records import RunDir, canonical_checkpoint
from offrl.envs import env_spaces
from offrl.tools.evaluation import (
    import_mujoco,
    load_policy,
)

FORMATS = {"torchscript": ".pt", "onnx": ".onnx"}
TOLERANCE = 1e-5  # largest |exported - agent| accepted at export time (measured: 0 for TorchScript, ~1e-7 ONNX)


class ExportedPolicy(nn.Module):
    """Normaliser, deterministic policy and action rescaling as one module: raw obs -> env actions."""

    def __init__(self, normalizer: nn.Module, policy: nn.Module, low: np.ndarray, high: np.ndarray) -> None:
        super().__init__()
        self.normalizer, self.policy = normalizer, policy
        # the condition under which offrl.envs.make_vec_env wraps the env in RescaleAction
        self.rescale = not (np.allclose(low, -1.0) and np.allclose(high, 1.0))
        self.register_buffer("low", torch.as_tensor(low, dtype=torch.float32))
        self.register_buffer("half_range", torch.as_tensor((high.astype(np.float64) - low) / 2, dtype=torch.float32))

    def forward(self, obs: Tensor) -> Tensor:
        action = self.policy(self.normalizer(obs))
        if self.rescale:  # RescaleAction: a in [-1, 1] -> low + (a + 1) (high - low) / 2
            action = self.low + (action + 1.0) * self.half_range
        return action


def space_record(space) -> dict[str, Any]:
    """Shape, dtype and bounds of a gymnasium Box (infinite bounds as the strings "inf" / "-inf")."""
    def bounds(values: np.ndarray) -> list:
        return [v if np.isfinite(v) else ("inf" if v > 0 else "-inf") for v in np.asarray(values, np.float64).tolist()]

    return {"type": type(space).__name__, "shape": list(space.shape), "dtype": str(space.dtype),
            "low": bounds(space.low), "high": bounds(space.high)}


def cpu_copy(agent: nn.Module) -> nn.Module:
    """``agent`` itself on the CPU, else a CPU agent built from its config and loaded with its state (the global
    random state left as it was): what is exported is always a CPU module."""
    if all(t.device.type == "cpu" for t in agent.state_dict().values() if isinstance(t, Tensor)):
        return agent
    with torch.random.fork_rng(devices=[]):
        twin = make_agent(agent.cfg, agent.obs_dim, agent.act_dim, "cpu")
    twin.load_state_dict({k: v.cpu() if isinstance(v, Tensor) else v for k, v in agent.state_dict().items()})
    return twin.eval()


def build(agent: nn.Module, normalizer: nn.Module, env_id: str,
          env_kwargs: dict[str, Any] | None = None) -> tuple[ExportedPolicy, dict[str, Any]]:
    """The exportable module (on the CPU) of an agent and its observation normaliser acting in ``env_id``, and the
    record of what it expects."""

    obs_space, act_space = env_spaces(env_id, env_kwargs)
    if not isinstance(act_space, gym.spaces.Box) or not np.all(np.isfinite(act_space.low)) \
            or not np.all(np.isfinite(act_space.high)):
        raise OffrlError(f"{env_id}: action space {act_space} has no finite bounds to rescale onto")
    if obs_space.shape != (agent.obs_dim,):
        raise OffrlError(f"{env_id}: observations of shape {obs_space.shape} do not fit the agent's "
                         f"obs_dim {agent.obs_dim}")
    normalizer_cpu = copy.deepcopy(normalizer).cpu()
    module = ExportedPolicy(normalizer_cpu, cpu_copy(agent).deterministic_policy(), act_space.low, act_space.high)
    record = {
        "offrl_version": __version__, "agent": agent.cfg.name, "env_id": env_id, "env_kwargs": env_kwargs or {},
        "deterministic": True,
        "observation_space": space_record(obs_space), "action_space": space_record(act_space),
        "input": {"name": "obs", "shape": ["batch", agent.obs_dim], "dtype": "float32",
                  "meaning": "raw environment observations (normalised inside the module)"},
        "output": {"name": "action", "shape": ["batch", agent.act_dim], "dtype": "float32",
                   "meaning": "actions within the action space bounds, to pass to env.step unchanged"},
        "action_rescaled_from": None if not module.rescale else [-1.0, 1.0],
        "normalizer": {"mean": normalizer_cpu.mean.tolist(), "std": normalizer_cpu.std.tolist()},
    }
    return module.eval(), record


def sample_observations(normalizer: nn.Module, n: int, seed: int) -> Tensor:
    """Raw observations around the normaliser's statistics (the data's, or N(0, 1) without them)."""
    g = torch.Generator().manual_seed(seed)
    mean, std = normalizer.mean.cpu(), normalizer.std.cpu()
    return mean + torch.randn(n, len(mean), generator=g) * std


@contextlib.contextmanager
def _quiet():
    """torch.jit.trace's deprecation notice and the ONNX exporter's progress lines and warnings
    (torchvision ops it skips, pytree deprecations) are not the user's concern."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def export_torchscript(module: ExportedPolicy, example: Tensor, out: Path, record: dict[str, Any]) -> None:
    with torch.no_grad(), _quiet():
        traced = torch.jit.trace(module, example)
        frozen = torch.jit.freeze(traced)  # weights become constants; the agent's other networks drop out
    torch.jit.save(frozen, str(out), _extra_files={"offrl.json": json.dumps(record)})


def export_onnx(module: ExportedPolicy, example: Tensor, out: Path, record: dict[str, Any]) -> None:
    try:
        import onnxscript  # noqa: F401  (the torch.export-based exporter translates through it)
    except ImportError:
        raise OffrlError("--format onnx needs onnx and onnxscript: pip install 'offrl[export]'") from None
    with torch.no_grad(), _quiet():
        program = torch.onnx.export(module, (example,), None, input_names=["obs"], output_names=["action"],
                                    dynamo=True, verbose=False,
                                    dynamic_shapes={"obs": {0: torch.export.Dim("batch")}})
    record["onnx_opset"] = program.model.opset_imports.get("", None)
    props = program.model.metadata_props
    props["offrl"] = json.dumps(record)
    for key in ("offrl_version", "agent", "env_id", "checkpoint"):
        props[f"offrl.{key}"] = str(record[key])
    program.save(str(out))


def load_exported(out: Path, fmt: str):
    """A function running the exported file on float32 numpy observations, or None if its runtime
    (onnxruntime for ONNX) is not installed."""
    if fmt == "torchscript":
        loaded = torch.jit.load(str(out), map_location="cpu")
        return lambda obs: loaded(torch.as_tensor(obs)).detach().numpy()
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    return lambda obs: session.run(["action"], {"obs": obs})[0]


def verify(module: ExportedPolicy, agent: nn.Module, normalizer: nn.Module, out: Path, fmt: str) -> dict[str, Any]:
    """Largest |exported - agent| on random observations, in batches of 1 and 64: the agent's side is
    ``act(normalise(obs), deterministic=True)`` on the agent's own device, then the rescaling."""
    run_exported = load_exported(out, fmt)
    if run_exported is None:
        return {"checked": False, "reason": "onnxruntime is not installed"}
    obs = sample_observations(normalizer, 65, seed=1)
    device = next(agent.parameters()).device
    with torch.no_grad():
        agent_actions = agent.act(copy.deepcopy(normalizer).to(device)(obs.to(device)), deterministic=True).cpu()
        expected = agent_actions if not module.rescale else module.low + (agent_actions + 1.0) * module.half_range
    name = agent.cfg.name
    worst = 0.0
    for batch in (slice(0, 1), slice(1, len(obs))):
        got, want = run_exported(obs[batch].numpy()), expected[batch].numpy()
        if got.shape != want.shape:
            raise OffrlError(f"{out}: the exported policy returned shape {got.shape} for a batch of "
                             f"{len(want)}, expected {want.shape}; agent '{name}' is not exportable as is")
        worst = max(worst, float(np.abs(got - want).max()))
    if not worst <= TOLERANCE:
        raise OffrlError(f"{out}: the exported policy differs from agent '{name}' by up to {worst:.3g} "
                         f"(tolerance {TOLERANCE:g}); agent '{name}' is not exportable as is")
    return {"checked": True, "observations": len(obs), "batch_sizes": [1, len(obs) - 1], "max_abs_diff": worst,
            "tolerance": TOLERANCE}


def export_policy(agent: nn.Module, normalizer: nn.Module, env_id: str, out: str | Path,
                  fmt: str = "torchscript", env_kwargs: dict[str, Any] | None = None,
                  provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    """Export an agent and its observation normaliser (on any device; for an agent trained in Python) as one
    standalone module for ``env_id`` into ``out``, check it against ``agent.act`` and write ``<out>.json``;
    returns that record (``provenance``, e.g. the checkpoint it came from, is added to it)."""
    if fmt not in FORMATS:
        raise OffrlError(f"--format={fmt} is unknown; expected one of {sorted(FORMATS)}")
    out = Path(out)
    sidecar = out.with_name(out.name + ".json")
    parent = out.parent if str(out.parent) else Path(".")
    try:
        check_writable_dir(parent, "directory of --out")  # created if missing, once the export is built
    except OffrlError as err:
        raise OffrlError(f"--out={out}: {err}") from None
    if out.is_dir():
        raise OffrlError(f"--out={out}: is a directory; expected a file name")
    training = agent.training
    agent.eval()  # the policy as it acts (dropout off), exported and checked; the agent's mode is restored after
    try:
        module, record = build(agent, normalizer, env_id, env_kwargs)
        record.update(provenance or {})
        record["format"] = fmt
        example = sample_observations(normalizer, 4, seed=0)
        try:
            parent.mkdir(parents=True, exist_ok=True)
            if fmt == "torchscript":
                export_torchscript(module, example, out, record)
            else:
                export_onnx(module, example, out, record)
        except (OSError, RuntimeError) as err:  # torch reports a failed write as RuntimeError
            reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err).strip().splitlines()[0]
            raise OffrlError(f"--out={out}: cannot write the export ({reason})") from None
        record["file"] = str(out)
        record["verification"] = verify(module, agent, normalizer, out, fmt)
    finally:
        agent.train(training)
    write_text(sidecar, json.dumps(record, indent=2, allow_nan=False), "export record")
    record["sidecar"] = str(sidecar)
    return record


def export_run(run_dir: str | Path, fmt: str, out: str | Path | None = None, which: str = "last") -> dict[str, Any]:
    """Export checkpoint ``which`` of a run; returns the record written to ``<out>.json``."""
    if fmt not in FORMATS:
        raise OffrlError(f"--format={fmt} is unknown; expected one of {sorted(FORMATS)}")
    import_mujoco()
    run_dir, which = Path(run_dir), canonical_checkpoint(which)
    RunDir(run_dir).checkpoint(which)
    out = Path(out) if out is not None else run_dir / f"policy_{which}{FORMATS[fmt]}"
    policy = load_policy(run_dir, which, "cpu")
    run = policy.run
    provenance = {"agent": run["agent"], "dataset": run.get("dataset"), "checkpoint": policy.checkpoint,
                  "checkpoint_path": str(policy.path), "global_step": policy.global_step}
    return export_policy(policy.agent, policy.normalizer, run["env_id"], out, fmt, run.get("env_kwargs"), provenance)
