"""``offrl eval <run dir>``: evaluate a trained policy on fresh seeds, optionally recording a video.

    offrl eval <run dir> [--checkpoint last|best|step_N] [--episodes N] [--seed S]
                         [--video FILE.mp4|FILE.gif] [--env ENV_ID] [--device cpu|cuda|auto]

Loads the agent and observation normaliser of a checkpoint written by ``offrl train`` (last: the end
of training, best: the policy with the best training evaluation, step_N: the snapshot at global step
N, ``trainer.snapshot_policies=true``), plays ``--episodes`` deterministic episodes with episode i
seeded ``seed + i`` (default seed 10000 + the run's seed: training evaluates on seed + 100 + i), prints
the return, the normalised score where the run has reference returns and the success rate where the
env reports ``info["success"]``, and writes ``<run dir>/eval_<checkpoint>.json`` (``eval_<checkpoint>_<env>.json``
with ``--env``). ``--video`` records the first episode with MuJoCo's offscreen renderer.

``load_policy`` (the agent, normaliser and run description of a checkpoint) is shared with
``offrl export``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from offrl.cli import OneLineParser
from offrl.errors import OffrlError

EVAL_SEED_OFFSET = 10_000  # default seed = 10000 + the run's seed; training evaluates on seed + 100 + i
GIF_MAX_FPS = 50  # GIF delays are whole centiseconds and viewers slow down delays under 20 ms


# ---------------------------------------------------------------------- loading a run's policy
@dataclass
class LoadedPolicy:
    agent: Any  # offrl.agents.Agent, in eval mode, on ``device``
    normalizer: Any  # offrl.data.store.ObsNormalizer, on ``device``
    run: dict[str, Any]  # the checkpoint's "run": agent, env_id, env_kwargs, obs_dim, act_dim, ref scores, ...
    config: dict[str, Any]  # the run's resolved config
    checkpoint: str  # last | best | step_N
    path: Path
    state: dict[str, Any]
    device: torch.device

    @property
    def global_step(self) -> int | None:
        """The training step the policy is from (pre-training steps + env steps, as TensorBoard's x-axis)."""
        if "eval" in self.state:
            return int(self.state["eval"]["global_step"])
        phases = self.state.get("phases")
        return sum(int(p["step"]) for p in phases.values()) if phases else None

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic actions in [-1, 1] for raw observations (B, obs_dim), normalised exactly as
        the trainer's evaluation does."""
        obs_t = self.normalizer(torch.as_tensor(obs, dtype=torch.float32, device=self.device))
        return self.agent.act(obs_t, deterministic=True).cpu().numpy()


def canonical_checkpoint(which: str) -> str:
    """step_00000010 and step_10 name one snapshot (and one eval_step_10.json)."""
    step = re.fullmatch(r"step_(\d+)", which)
    return f"step_{int(step.group(1))}" if step else which


def checkpoint_path(run_dir: Path, which: str) -> Path:
    """The file of ``which`` (last | best | step_N) in ``run_dir``; a missing run or checkpoint, or an
    unknown name, is an OffrlError listing the checkpoints the run has."""
    if not run_dir.is_dir():
        what = "is not a directory" if run_dir.exists() else "does not exist"
        raise OffrlError(f"{run_dir}: the run directory {what}; expected a directory written by offrl train")
    available = available_checkpoints(run_dir)
    shown = ", ".join(available) if available else "none"
    if which in ("last", "best"):
        path = run_dir / "checkpoints" / f"{which}.pt"
    else:
        match = re.fullmatch(r"step_(\d+)", which)
        if not match:
            raise OffrlError(f"--checkpoint={which} is not last, best or step_N (N a global step); "
                             f"checkpoints in {run_dir}: {shown}")
        path = run_dir / "snapshots" / f"step_{int(match.group(1)):08d}.pt"
    if not path.is_file():
        if not available:
            raise OffrlError(f"{run_dir}: holds no checkpoint (no checkpoints/last.pt, checkpoints/best.pt or "
                             "snapshots/step_N.pt); expected a run directory written by offrl train")
        raise OffrlError(f"{run_dir}: no checkpoint '{which}' ({path.relative_to(run_dir)} not found); "
                         f"this run has: {shown}")
    return path


def available_checkpoints(run_dir: Path) -> list[str]:
    names = [name for name in ("last", "best") if (run_dir / "checkpoints" / f"{name}.pt").is_file()]
    snapshots = sorted((run_dir / "snapshots").glob("step_*.pt")) if (run_dir / "snapshots").is_dir() else []
    for snapshot in snapshots:
        match = re.fullmatch(r"step_(\d+)\.pt", snapshot.name)
        if match:
            names.append(f"step_{int(match.group(1))}")
    return names


def load_policy(run_dir: str | Path, which: str = "last", device: str = "cpu") -> LoadedPolicy:
    """The agent and observation normaliser of checkpoint ``which`` of a run, ready to act; tensors are
    read onto the CPU first (a checkpoint written on a GPU loads on a CPU-only machine)."""
    from offrl import checkpoint
    from offrl.agents import agent_config, make_agent
    from offrl.data.store import ObsNormalizer
    from offrl.run import resolve_device

    run_dir = Path(run_dir)
    path = checkpoint_path(run_dir, which)
    torch_device = resolve_device(device)
    state = checkpoint.load(path)  # map_location cpu; a truncated or foreign file is an OffrlError
    missing = [key for key in ("agent", "normalizer", "run") if key not in state]
    if missing:
        raise OffrlError(f"{path}: checkpoint lacks {missing}; it was written by an older offrl (train the run "
                         "again to evaluate or export it)")
    run, config = state["run"], state.get("config") or _saved_config(run_dir)
    if "agent" not in config:
        raise OffrlError(f"{path}: the checkpoint's run config has no agent section")
    try:
        agent = make_agent(agent_config(config["agent"]), run["obs_dim"], run["act_dim"], str(torch_device))
        agent.load_state_dict(state["agent"])
        normalizer = ObsNormalizer(run["obs_dim"])
        normalizer.load_state_dict(state["normalizer"])
    except (RuntimeError, KeyError, ValueError) as err:
        raise OffrlError(f"{path}: the checkpoint does not fit agent '{run.get('agent')}' of this offrl "
                         f"({str(err).splitlines()[0]})") from None
    agent.eval()
    return LoadedPolicy(agent, normalizer.to(torch_device), run, config, which, path, state, torch_device)


def _saved_config(run_dir: Path) -> dict[str, Any]:
    from omegaconf import OmegaConf

    saved = run_dir / "config.yaml"
    if not saved.is_file():
        raise OffrlError(f"{run_dir}: the checkpoint holds no run config and {saved.name} is missing")
    return OmegaConf.to_container(OmegaConf.load(saved), resolve=True)


def check_env(env_id: str, run: dict[str, Any], where: str = "--env") -> dict[str, Any]:
    """The env kwargs to evaluate ``env_id`` with (the run's own for the run's env); an unknown id or
    spaces that do not fit the policy are OffrlErrors."""
    from offrl.envs import env_spaces, env_spec

    env_spec(env_id, where=where)
    kwargs = (run.get("env_kwargs") or {}) if env_id == run["env_id"] else {}
    obs_space, act_space = env_spaces(env_id, kwargs)
    want_obs, want_act = (run["obs_dim"],), (run["act_dim"],)
    if obs_space.shape != want_obs or getattr(act_space, "shape", None) != want_act:
        raise OffrlError(f"{where}={env_id}: observations {obs_space.shape} and actions "
                         f"{getattr(act_space, 'shape', act_space)}, but the policy was trained on {run['env_id']} "
                         f"with observations {want_obs} and actions {want_act}")
    return kwargs


# ---------------------------------------------------------------------- evaluation
def normalized_score(episode_return: float, run: dict[str, Any]) -> float | None:
    """D4RL normalised score x100, as the trainer reports it; None without reference returns."""
    low, high = run.get("ref_min_score"), run.get("ref_max_score")
    if low is None or high is None:
        return None
    return 100.0 * (episode_return - low) / (high - low)


# ---------------------------------------------------------------------- video
def check_video_path(video: str) -> Path:
    """``video`` must end in .mp4 or .gif and lie in an existing, writable directory (checked before
    anything is evaluated); mp4 needs imageio-ffmpeg."""
    path = Path(video)
    if path.suffix.lower() not in (".mp4", ".gif"):
        raise OffrlError(f"--video={video}: expected a file name ending in .mp4 or .gif")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise OffrlError(f"--video={video}: cannot write there: the directory {parent} {what}")
    if path.is_dir() or not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise OffrlError(f"--video={video}: cannot write there (permission denied or a directory)")
    if path.suffix.lower() == ".mp4":
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise OffrlError(f"--video={video}: mp4 needs imageio-ffmpeg (pip install imageio-ffmpeg, or "
                             "pip install 'offrl[export]'); a .gif needs nothing more") from None
    return path


GL_PACKAGES = {"egl": "libegl1 libegl-mesa0 libgl1-mesa-dri", "osmesa": "libosmesa6"}
_PROBE = "import mujoco; c = mujoco.GLContext(16, 16); c.make_current(); c.free()"


def import_mujoco() -> None:
    """``import mujoco``, which loads the OpenGL backend that $MUJOCO_GL names as it is imported: a
    backend whose system library is missing is one line instead of a traceback."""
    try:
        import mujoco  # noqa: F401
    except Exception as err:  # PyOpenGL fails in various ways (AttributeError, ImportError, ...)
        backend = os.environ.get("MUJOCO_GL")
        if not backend:
            raise
        install = f"apt-get install {GL_PACKAGES[backend]}, " if backend in GL_PACKAGES else ""
        raise OffrlError(f"MUJOCO_GL={backend}: mujoco cannot load this OpenGL backend ({type(err).__name__}: "
                         f"{_last_line(str(err))}); {install}choose another or unset MUJOCO_GL") from None


def choose_gl_backend() -> str:
    """The MuJoCo OpenGL backend for offscreen rendering: $MUJOCO_GL if set, else the first of egl and
    osmesa that can make a context. Each is tried in a child process: PyOpenGL binds its platform
    once per process, so a failed egl could not be followed by osmesa in this one."""
    if os.environ.get("MUJOCO_GL"):
        return os.environ["MUJOCO_GL"]
    failures = []
    for backend in ("egl", "osmesa"):
        env = {**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}
        try:
            probe = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True,
                                   timeout=120)
            ok, reason = probe.returncode == 0, _last_line(probe.stderr)
        except (OSError, subprocess.TimeoutExpired) as err:
            ok, reason = False, type(err).__name__
        if ok:
            os.environ["MUJOCO_GL"] = backend
            os.environ.setdefault("PYOPENGL_PLATFORM", backend)
            return backend
        failures.append(f"{backend}: {reason}")
    raise OffrlError(f"--video: no offscreen OpenGL backend works here ({'; '.join(failures)}); install the "
                     f"system libraries, e.g. on Debian/Ubuntu apt-get install {GL_PACKAGES['egl']} (MUJOCO_GL=egl) "
                     f"or {GL_PACKAGES['osmesa']} (MUJOCO_GL=osmesa), or set MUJOCO_GL to a backend that works")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "failed"


def record_video(policy: Callable[[np.ndarray], np.ndarray], env_id: str, env_kwargs: dict[str, Any], seed: int,
                 path: Path) -> dict[str, Any]:
    """Play one deterministic episode (seed ``seed``) with ``render_mode="rgb_array"`` and write its
    frames (the reset frame, then one per step) at the env's ``metadata["render_fps"]``: mp4 through
    imageio-ffmpeg, GIF through imageio (above 50 fps a GIF keeps every k-th frame, k = ceil(fps / 50))."""
    import gymnasium as gym
    import imageio.v2 as imageio

    from offrl.envs import env_spec

    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame (classic control) renders offscreen: no display
    try:
        env = gym.make(env_spec(env_id), render_mode="rgb_array", **env_kwargs)
    except gym.error.Error as err:
        raise OffrlError(f"--video: {env_id} cannot render offscreen ({err})") from None
    try:
        from gymnasium.envs.mujoco.mujoco_env import MujocoEnv

        backend = choose_gl_backend() if isinstance(env.unwrapped, MujocoEnv) else None
        if isinstance(env.observation_space, gym.spaces.Dict):  # as offrl.envs.make_vec_env: flat, spec order
            from offrl.data.spec import FlattenBySpec

            env = FlattenBySpec(env)
        space = env.action_space
        if not (np.allclose(space.low, -1.0) and np.allclose(space.high, 1.0)):  # as offrl.envs.make_vec_env
            ones = np.ones(space.shape, space.dtype)
            env = gym.wrappers.RescaleAction(env, -ones, ones)
        fps = float(env.metadata.get("render_fps") or 30)
        gif = path.suffix.lower() == ".gif"
        every = max(1, math.ceil(fps / GIF_MAX_FPS)) if gif else 1
        obs, _ = env.reset(seed=seed)
        frame = _render(env, backend)
        if gif:
            writer = imageio.get_writer(path, mode="I", duration=1000.0 * every / fps, loop=0)
        else:
            writer = imageio.get_writer(path, fps=fps, codec="libx264")
        frames = episode_return = length = 0
        try:
            done = False
            while True:
                if length % every == 0:
                    writer.append_data(frame)
                    frames += 1
                if done:
                    break
                obs, reward, terminated, truncated, _ = env.step(policy(obs[None])[0])
                episode_return += float(reward)
                length += 1
                done = terminated or truncated
                frame = _render(env, backend)
        finally:
            writer.close()
    except OSError as err:
        raise OffrlError(f"--video={path}: cannot write the video ({err.strerror or err})") from None
    finally:
        env.close()
    return {"path": str(path), "frames": frames, "fps": fps / every, "episode_return": episode_return,
            "length": length, "seed": seed, "gl_backend": backend}


def _render(env, backend: str | None) -> np.ndarray:
    try:
        return env.render()
    except Exception as err:  # any GL or renderer failure: one line naming the backend
        hint = ""
        if backend in GL_PACKAGES:
            hint = f" (MUJOCO_GL={backend}; on Debian/Ubuntu: apt-get install {GL_PACKAGES[backend]})"
        elif backend:
            hint = f" (MUJOCO_GL={backend}; offscreen rendering needs MUJOCO_GL=egl or osmesa)"
        raise OffrlError(f"--video: rendering failed: {type(err).__name__}: {_last_line(str(err))}{hint}") from None


# ---------------------------------------------------------------------- command
def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = OneLineParser(
        prog="offrl eval", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Evaluate a trained policy on fresh seeds: prints the return, the normalized score (where the run "
                    "has reference returns) and the success rate (where the env reports one); writes "
                    "<run dir>/eval_<checkpoint>.json.",
        epilog="""examples:
  offrl eval <run dir>                                 10 episodes of the policy at the end of training
  offrl eval <run dir> --checkpoint best --episodes 50 the policy of the best training evaluation
  offrl eval <run dir> --video hopper.mp4              ... and film its first episode (or .gif)
  offrl eval <run dir> --seed 100                      replay training's evaluations of a seed-0 run""")
    parser.add_argument("run_dir", help="a run directory written by offrl train")
    parser.add_argument("--checkpoint", default="last", help="last (default), best, or step_N (a snapshot)")
    parser.add_argument("--episodes", type=int, default=10, help="episodes to play (default 10)")
    parser.add_argument("--seed", type=int, default=None,
                        help=f"episode i is seeded SEED + i (default {EVAL_SEED_OFFSET} + the run's seed)")
    parser.add_argument("--video", default=None, help="record the first episode to FILE.mp4 or FILE.gif")
    parser.add_argument("--env", default=None, help="evaluate on another gymnasium env with the same spaces")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: one small MLP)")
    args = parser.parse_args(argv)
    if args.episodes <= 0:
        raise OffrlError(f"--episodes={args.episodes} must be a positive number of episodes")
    args.checkpoint = canonical_checkpoint(args.checkpoint)
    if args.threads <= 0:
        raise OffrlError(f"--threads={args.threads} must be a positive number of torch CPU threads")
    return args


def evaluate_run(args: argparse.Namespace) -> dict[str, Any]:
    from offrl import __version__

    started = time.perf_counter()
    import_mujoco()
    from offrl.envs import evaluate, make_vec_env

    run_dir = Path(args.run_dir)
    checkpoint_path(run_dir, args.checkpoint)  # the run and checkpoint exist, before anything else
    video = check_video_path(args.video) if args.video else None
    torch.set_num_threads(args.threads)
    policy = load_policy(run_dir, args.checkpoint, args.device)
    run = policy.run
    env_id = args.env or run["env_id"]
    env_kwargs = check_env(env_id, run)
    seed = args.seed if args.seed is not None else EVAL_SEED_OFFSET + int(policy.config.get("seed", 0))
    # the video first: a renderer that cannot work fails before the evaluation's time is spent
    recorded = record_video(policy.act, env_id, env_kwargs, seed, video) if video is not None else None
    envs = make_vec_env(env_id, min(args.episodes, 10), env_kwargs)
    try:
        episodes = evaluate(policy.act, envs, args.episodes, seed)  # the trainer's evaluation loop
    finally:
        envs.close()
    result: dict[str, Any] = {
        "run_dir": str(run_dir), "checkpoint": args.checkpoint, "checkpoint_path": str(policy.path),
        "global_step": policy.global_step, "agent": run["agent"], "dataset": run.get("dataset"), "env_id": env_id,
        "episodes": args.episodes, "seed": seed, "seeds": [seed, seed + args.episodes - 1],
        "return_mean": float(episodes.returns.mean()), "return_std": float(episodes.returns.std()),
        "length_mean": float(episodes.lengths.mean()),
    }
    score = normalized_score(result["return_mean"], run) if env_id == run["env_id"] else None
    if score is not None:
        result["normalized_score"] = score
        result["normalized_score_std"] = 100.0 * result["return_std"] / (run["ref_max_score"] - run["ref_min_score"])
        result["ref_min_score"], result["ref_max_score"] = run["ref_min_score"], run["ref_max_score"]
    if episodes.successes is not None:
        result["success_rate"] = float(episodes.successes.mean())
    if "eval" in policy.state:
        result["training_eval"] = policy.state["eval"]  # what training measured for this policy (seed + 100 + i)
    result.update(returns=episodes.returns.tolist(), lengths=episodes.lengths.tolist(), device=str(policy.device))
    if episodes.successes is not None:
        result["successes"] = episodes.successes.tolist()
    if recorded is not None:
        result["video"] = recorded
    result.update(wall_s=time.perf_counter() - started, offrl_version=__version__)
    other_env = f"_{env_id}" if env_id != run["env_id"] else ""  # never overwrite the run env's evaluation
    out = run_dir / f"eval_{args.checkpoint}{other_env}.json"
    try:
        out.write_text(json.dumps(result, indent=2))
    except OSError as err:
        raise OffrlError(f"{out}: cannot write the evaluation ({err.strerror or err})") from None
    result["json"] = str(out)
    return result


def describe(result: dict[str, Any]) -> str:
    step = f", global step {result['global_step']}" if result.get("global_step") is not None else ""
    parts = [f"return {result['return_mean']:.1f} +- {result['return_std']:.1f}"]
    if "normalized_score" in result:
        parts.append(f"normalized score {result['normalized_score']:.1f} +- {result['normalized_score_std']:.1f}")
    if "success_rate" in result:
        parts.append(f"success rate {result['success_rate']:.2f}")
    first, last = result["seeds"]
    return (f"offrl: eval {result['agent']} on {result['env_id']} (checkpoint {result['checkpoint']}{step}), "
            f"{result['episodes']} episodes, seeds {first}-{last}: {', '.join(parts)}; results in {result['json']}")


def main(argv: list[str]) -> int:
    try:
        args = parse_args(list(argv))
        result = evaluate_run(args)
    except SystemExit as exit_:  # --help
        return exit_.code if isinstance(exit_.code, int) else 0
    except OffrlError as err:
        print(f"offrl: error: {err}", file=sys.stderr)
        return 2
    print(describe(result))
    if "video" in result:
        v = result["video"]
        print(f"offrl: video of the first episode (seed {v['seed']}, return {v['episode_return']:.1f}, "
              f"{v['frames']} frames at {v['fps']:g} fps) written to {v['path']}")
    return 0
