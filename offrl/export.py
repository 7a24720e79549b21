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
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from offrl.cli import OneLineParser
from offrl.errors import OffrlError
from offrl.evaluation import (
    LoadedPolicy,
    canonical_checkpoint,
    checkpoint_path,
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


def build(policy: LoadedPolicy) -> tuple[ExportedPolicy, dict[str, Any]]:
    """The exportable module of a loaded policy (on the CPU) and the record of what it expects."""
    import gymnasium as gym

    from offrl import __version__
    from offrl.envs import env_spaces

    run = policy.run
    obs_space, act_space = env_spaces(run["env_id"], run.get("env_kwargs"))
    if not isinstance(act_space, gym.spaces.Box) or not np.all(np.isfinite(act_space.low)) \
            or not np.all(np.isfinite(act_space.high)):
        raise OffrlError(f"{run['env_id']}: action space {act_space} has no finite bounds to rescale onto")
    module = ExportedPolicy(policy.normalizer, policy.agent.deterministic_policy(), act_space.low, act_space.high)
    record = {
        "offrl_version": __version__, "agent": run["agent"], "env_id": run["env_id"],
        "env_kwargs": run.get("env_kwargs") or {}, "dataset": run.get("dataset"), "checkpoint": policy.checkpoint,
        "checkpoint_path": str(policy.path), "global_step": policy.global_step, "deterministic": True,
        "observation_space": space_record(obs_space), "action_space": space_record(act_space),
        "input": {"name": "obs", "shape": ["batch", run["obs_dim"]], "dtype": "float32",
                  "meaning": "raw environment observations (normalised inside the module)"},
        "output": {"name": "action", "shape": ["batch", run["act_dim"]], "dtype": "float32",
                   "meaning": "actions within the action space bounds, to pass to env.step unchanged"},
        "action_rescaled_from": None if not module.rescale else [-1.0, 1.0],
        "normalizer": {"mean": policy.normalizer.mean.tolist(), "std": policy.normalizer.std.tolist()},
    }
    return module.eval(), record


def sample_observations(policy: LoadedPolicy, n: int, seed: int) -> Tensor:
    """Raw observations around the normaliser's statistics (the data's, or N(0, 1) without them)."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, policy.run["obs_dim"], generator=g)
    return policy.normalizer.mean.cpu() + noise * policy.normalizer.std.cpu()


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


def verify(module: ExportedPolicy, policy: LoadedPolicy, out: Path, fmt: str) -> dict[str, Any]:
    """Largest |exported - agent| on random observations, in batches of 1 and 64: the agent's side is
    ``act(normalise(obs), deterministic=True)`` then the rescaling, computed by ``module`` in eager mode
    (``module.policy`` is the agent's own ``deterministic_policy``)."""
    run_exported = load_exported(out, fmt)
    if run_exported is None:
        return {"checked": False, "reason": "onnxruntime is not installed"}
    obs = sample_observations(policy, 65, seed=1)
    with torch.no_grad():
        normalized = policy.normalizer(obs)
        agent_actions = policy.agent.act(normalized, deterministic=True)
        expected = agent_actions if not module.rescale else module.low + (agent_actions + 1.0) * module.half_range
    worst = 0.0
    for batch in (obs[:1], obs[1:]):
        got = run_exported(batch.numpy())
        want = expected[: len(batch)].numpy() if len(batch) == 1 else expected[1:].numpy()
        if got.shape != want.shape:
            raise OffrlError(f"{out}: the exported policy returned shape {got.shape} for a batch of {len(batch)}, "
                             f"expected {want.shape}; agent '{policy.run['agent']}' is not exportable as is")
        worst = max(worst, float(np.abs(got - want).max()))
    if not worst <= TOLERANCE:
        raise OffrlError(f"{out}: the exported policy differs from agent '{policy.run['agent']}' by up to {worst:.3g} "
                         f"(tolerance {TOLERANCE:g}); agent '{policy.run['agent']}' is not exportable as is")
    return {"checked": True, "observations": len(obs), "batch_sizes": [1, len(obs) - 1], "max_abs_diff": worst,
            "tolerance": TOLERANCE}


def parse_args(argv: list[str]):
    parser = OneLineParser(prog="offrl export", description="Export a trained policy as a standalone module.")
    parser.add_argument("run_dir", help="a run directory written by offrl train")
    parser.add_argument("--format", required=True, choices=sorted(FORMATS), help="torchscript or onnx")
    parser.add_argument("--out", default=None,
                        help="output file (default <run dir>/policy_<checkpoint>.pt or .onnx); record in <out>.json")
    parser.add_argument("--checkpoint", default="last", help="last (default), best, or step_N (a snapshot)")
    return parser.parse_args(argv)


def export_run(run_dir: str | Path, fmt: str, out: str | Path | None = None, which: str = "last") -> dict[str, Any]:
    """Export checkpoint ``which`` of a run; returns the record written to ``<out>.json``."""
    if fmt not in FORMATS:
        raise OffrlError(f"--format={fmt} is unknown; expected one of {sorted(FORMATS)}")
    import_mujoco()
    run_dir, which = Path(run_dir), canonical_checkpoint(which)
    checkpoint_path(run_dir, which)
    out = Path(out) if out is not None else run_dir / f"policy_{which}{FORMATS[fmt]}"
    sidecar = out.with_name(out.name + ".json")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise OffrlError(f"--out={out}: cannot write there: the directory {parent} does not exist")
    if out.is_dir():
        raise OffrlError(f"--out={out}: is a directory; expected a file name")
    policy = load_policy(run_dir, which, "cpu")
    module, record = build(policy)
    record["format"] = fmt
    example = sample_observations(policy, 4, seed=0)
    try:
        if fmt == "torchscript":
            export_torchscript(module, example, out, record)
        else:
            export_onnx(module, example, out, record)
    except OSError as err:
        raise OffrlError(f"--out={out}: cannot write the export ({err.strerror or err})") from None
    record["file"] = str(out)
    record["verification"] = verify(module, policy, out, fmt)
    try:
        sidecar.write_text(json.dumps(record, indent=2, allow_nan=False))
    except OSError as err:
        raise OffrlError(f"{sidecar}: cannot write the record ({err.strerror or err})") from None
    record["sidecar"] = str(sidecar)
    return record


def main(argv: list[str]) -> int:
    try:
        args = parse_args(list(argv))
        record = export_run(args.run_dir, args.format, args.out, args.checkpoint)
    except SystemExit as exit_:  # --help
        return exit_.code if isinstance(exit_.code, int) else 0
    except OffrlError as err:
        print(f"offrl: error: {err}", file=sys.stderr)
        return 2
    check = record["verification"]
    checked = (f"matches the agent to {check['max_abs_diff']:.1g} (tolerance {check['tolerance']:g})"
               if check["checked"] else f"not checked: {check['reason']}")
    obs, act = record["observation_space"]["shape"], record["action_space"]["shape"]
    print(f"offrl: exported {record['agent']} ({record['checkpoint']}, global step {record['global_step']}) as "
          f"{record['format']} to {record['file']}: obs (batch, {', '.join(map(str, obs))}) float32 -> action "
          f"(batch, {', '.join(map(str, act))}) for {record['env_id']}; {checked}; spaces in {record['sidecar']}")
    return 0
