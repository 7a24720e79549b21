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

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from offrl import __version__
from offrl.agents import agent_config, make_agent
from offrl.core import records
from offrl.core.checkpoint import atomic_path, write_text
from offrl.core.errors import OffrlError
from offrl.core.records import RunDir, canonical_checkpoint
from offrl.core.runtime import resolve_device
from offrl.data.store import ObsNormalizer
from offrl.envs import FlattenBySpec, env_spaces, env_spec, evaluate, make_vec_env

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


def load_policy(run_dir: str | Path, which: str = "last", device: str = "cpu") -> LoadedPolicy:
    """The agent and observation normaliser of checkpoint ``which`` of a run, ready to act; tensors are
    read onto the CPU first (a checkpoint written on a GPU loads on a CPU-only machine)."""
    run_dir = Path(run_dir)
    path = RunDir(run_dir).checkpoint(which)
    torch_device = resolve_device(device)
    state = records.read_checkpoint(path)  # map_location cpu; a truncated or foreign file is an OffrlError
    missing = [key for key in ("agent", "normalizer", "run") if key not in state]
    if missing:
        raise OffrlError(f"{path}: checkpoint lacks {missing}; it was written by an older offrl (train the run "
                         "again to evaluate or export it)")
    run, config = records.run_info(state, path).as_dict(), state.get("config") or records.read_config(run_dir)
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


def check_env(env_id: str, run: dict[str, Any], where: str = "--env") -> dict[str, Any]:
    """The env kwargs to evaluate ``env_id`` with (the run's own for the run's env); an unknown id or
    spaces that do not fit the policy are OffrlErrors."""
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
    import imageio.v2 as imageio


    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame (classic control) renders offscreen: no display
    try:
        env = gym.make(env_spec(env_id), render_mode="rgb_array", **env_kwargs)
    except gym.error.Error as err:
        raise OffrlError(f"--video: {env_id} cannot render offscreen ({err})") from None
    try:

        from gymnasium.envs.mujoco.mujoco_env import MujocoEnv  # imports mujoco: after import_mujoco()

        backend = choose_gl_backend() if isinstance(env.unwrapped, MujocoEnv) else None
        if isinstance(env.observation_space, gym.spaces.Dict):  # as offrl.envs.make_vec_env: flat, spec order

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
        with atomic_path(path, "video") as tmp:  # a failed or interrupted write keeps a previous video
            if gif:
                writer = imageio.get_writer(tmp, mode="I", duration=1000.0 * every / fps, loop=0)
            else:
                writer = imageio.get_writer(tmp, fps=fps, codec="libx264")
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


def evaluate_run(run_dir: str | Path, checkpoint: str = "last", episodes: int = 10, seed: int | None = None,
                 video: str | None = None, env: str | None = None, device: str = "cpu",
                 threads: int = 1) -> dict[str, Any]:
    """Evaluate checkpoint ``checkpoint`` of a run on ``episodes`` seeded episodes (and film the first into
    ``video``); writes ``<run dir>/eval_<checkpoint>.json`` and returns what it holds."""
    started = time.perf_counter()
    import_mujoco()

    run_dir, checkpoint = Path(run_dir), canonical_checkpoint(checkpoint)
    RunDir(run_dir).checkpoint(checkpoint)  # the run and checkpoint exist, before anything else
    video = check_video_path(video) if video else None
    torch.set_num_threads(threads)
    policy = load_policy(run_dir, checkpoint, device)
    run = policy.run
    env_id = env or run["env_id"]
    env_kwargs = check_env(env_id, run)
    seed = seed if seed is not None else EVAL_SEED_OFFSET + int(policy.config.get("seed", 0))
    # the video first: a renderer that cannot work fails before the evaluation's time is spent
    recorded = record_video(policy.act, env_id, env_kwargs, seed, video) if video is not None else None
    envs = make_vec_env(env_id, min(episodes, 10), env_kwargs)
    try:
        played = evaluate(policy.act, envs, episodes, seed)  # the trainer's evaluation loop
    finally:
        envs.close()
    result: dict[str, Any] = {
        "run_dir": str(run_dir), "checkpoint": checkpoint, "checkpoint_path": str(policy.path),
        "global_step": policy.global_step, "agent": run["agent"], "dataset": run.get("dataset"), "env_id": env_id,
        "episodes": episodes, "seed": seed, "seeds": [seed, seed + episodes - 1],
        "return_mean": float(played.returns.mean()), "return_std": float(played.returns.std()),
        "length_mean": float(played.lengths.mean()),
    }
    score = normalized_score(result["return_mean"], run) if env_id == run["env_id"] else None
    if score is not None:
        result["normalized_score"] = score
        result["normalized_score_std"] = 100.0 * result["return_std"] / (run["ref_max_score"] - run["ref_min_score"])
        result["ref_min_score"], result["ref_max_score"] = run["ref_min_score"], run["ref_max_score"]
    if played.successes is not None:
        result["success_rate"] = float(played.successes.mean())
    if "eval" in policy.state:
        result["training_eval"] = policy.state["eval"]  # what training measured for this policy (seed + 100 + i)
    result.update(returns=played.returns.tolist(), lengths=played.lengths.tolist(), device=str(policy.device))
    if played.successes is not None:
        result["successes"] = played.successes.tolist()
    if recorded is not None:
        result["video"] = recorded
    result.update(wall_s=time.perf_counter() - started, offrl_version=__version__)
    other_env = f"_{env_id}" if env_id != run["env_id"] else ""  # never overwrite the run env's evaluation
    out = run_dir / f"eval_{checkpoint}{other_env}.json"
    write_text(out, json.dumps(result, indent=2), "evaluation")
    result["json"] = str(out)
    return result
