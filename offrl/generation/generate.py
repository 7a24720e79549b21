"""D4RL-protocol datasets on gymnasium MuJoCo tasks, generated from shipped SAC behaviour policies.

Names follow D4RL: ``<family>-<quality>`` with family in hopper / halfcheetah / walker2d / ant and
quality in random / medium / expert / medium-replay / medium-expert (docs/reference/datasets.md):

- random: uniform actions in [-1, 1];
- medium / expert: actions *sampled* from the tanh-Gaussian SAC policy of the medium snapshot (about a
  third of the expert's return) or the final expert;
- medium-expert: the medium data followed by the expert data;
- medium-replay: the replay buffer of the SAC run up to the medium snapshot.

The behaviour policies (actor weights, a few hundred KB each) and the record of how they were trained
live in ``datasets/<family>/`` (``behaviour.json``). Everything but medium-replay is regenerated from
them bit-identically (same seed, same machine type) in about a minute per million transitions;
medium-replay re-runs the recorded SAC training up to the medium step (or reads the replay buffer of
an existing run directory with ``--from-run``).

Each build writes a D4RL-layout hdf5 file into the cache directory and a Minari dataset
``offrl/<family>/<quality>-v0`` (under ``$MINARI_DATASETS_PATH``, default ``~/.minari/datasets``), both
carrying the reference returns (uniform-random and expert policy, 100 episodes each) and the recipe.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import gymnasium as gym
import h5py
import numpy as np
import torch

from offrl.core import checkpoint, records
from offrl.core.errors import DatasetError
from offrl.core.nets import TanhGaussianActor
from offrl.core.records import RunDir
from offrl.data.cache import cache_file
from offrl.data.d4rl import write_d4rl_hdf5
from offrl.data.minari_reader import write_minari as write
from offrl.envs import evaluate, make_vec_env
from offrl.generation.collect import BehaviourPolicy, UniformRandomPolicy, collect, worker_pool
from offrl.training.run import train

FAMILIES = {"hopper": "Hopper-v5", "halfcheetah": "HalfCheetah-v5", "walker2d": "Walker2d-v5", "ant": "Ant-v5"}
QUALITIES = ("random", "medium", "expert", "medium-replay", "medium-expert")
FULL_SIZE = 1_000_000  # per policy, as in D4RL (medium-expert: 2M)
SEEDS = {"random": 1, "medium": 2, "expert": 3}  # collection seeds per quality (episode i: seed * 10^7 + i)


def behaviour_root() -> Path:
    """``$OFFRL_BEHAVIOUR_DIR``, else ``datasets/`` of the source tree (installed as ``offrl.behaviour``)."""
    return Path(os.environ.get("OFFRL_BEHAVIOUR_DIR") or str(resources.files("offrl.behaviour")))


def available_families() -> list[str]:
    return [f for f in FAMILIES if (behaviour_root() / f / "behaviour.json").is_file()]


def split_name(name: str) -> tuple[str, str]:
    for family in FAMILIES:
        for quality in QUALITIES:
            if name == f"{family}-{quality}":
                return family, quality
    raise DatasetError(f"'{name}' is not a generated dataset name; expected <family>-<quality> with family in "
                       f"{list(FAMILIES)} and quality in {list(QUALITIES)}")


@dataclass
class BehaviourCard:
    """``datasets/<family>/behaviour.json``: how the behaviour policies were made and what they score."""

    family: str
    env_id: str
    hidden_dims: list[int]
    train_config: dict[str, Any]  # the offrl config of the SAC run (seed, threads, steps, ...)
    train_command: str
    expert_step: int
    medium_step: int  # env steps of the run at the medium snapshot
    medium_replay_rows: int  # replay rows at that step (autoreset steps carry no transition)
    snapshot_returns: dict[str, float]  # evaluation return of each shipped snapshot during training
    ref_min_score: float  # uniform random actions, mean over ref_episodes episodes
    ref_max_score: float  # the expert policy (sampled actions), mean over ref_episodes episodes
    ref_episodes: int
    policy_returns: dict[str, float]  # mean return of each behaviour policy with sampled actions

    @classmethod
    def load(cls, family: str) -> BehaviourCard:
        path = behaviour_root() / family / "behaviour.json"
        if not path.is_file():
            raise DatasetError(f"{path}: no behaviour policies shipped for '{family}' yet "
                               f"(available: {available_families()})")
        return cls(**json.loads(path.read_text()))

    def actor_path(self, which: str) -> Path:
        return behaviour_root() / self.family / f"{which}.pt"


class ActorBehaviour:
    """Sampled actions of a shipped SAC actor, with its own seeded noise generator (batched inference)."""

    def __init__(self, state: dict[str, torch.Tensor], obs_dim: int, act_dim: int, hidden: list[int], seed: int):
        self.actor = TanhGaussianActor(obs_dim, act_dim, hidden)
        self.actor.load_state_dict(state)
        self.generator = torch.Generator().manual_seed(seed)

    def reset(self, mask: np.ndarray) -> None:
        pass

    @torch.no_grad()
    def __call__(self, obs: np.ndarray) -> np.ndarray:
        mean, log_std = self.actor.distribution(torch.as_tensor(obs, dtype=torch.float32))
        noise = torch.randn(mean.shape, generator=self.generator)
        return torch.tanh(mean + log_std.exp() * noise).numpy()


def make_behaviour(family: str, quality: str, seed: int) -> BehaviourPolicy:
    """A picklable-by-name factory: workers rebuild their policy from (family, quality, seed)."""
    card = BehaviourCard.load(family)
    obs_dim, act_dim = _dims(card.env_id)
    if quality == "random":
        return UniformRandomPolicy(act_dim, seed)
    state = torch.load(card.actor_path(quality), map_location="cpu", weights_only=True)
    return ActorBehaviour(state, obs_dim, act_dim, card.hidden_dims, seed)


def _dims(env_id: str) -> tuple[int, int]:
    env = gym.make(env_id)
    dims = env.observation_space.shape[0], env.action_space.shape[0]
    env.close()
    return dims


def _collect_worker(args: tuple) -> dict[str, np.ndarray]:
    family, quality, env_id, size, seed, num_envs, desc = args
    torch.set_num_threads(1)
    return collect(make_behaviour(family, quality, seed), env_id, size, seed, num_envs, desc=desc)


def collect_policy(family: str, quality: str, size: int, workers: int = 2, num_envs: int = 8) -> dict[str, np.ndarray]:
    """``size`` transitions of ``quality``'s behaviour, split over ``workers`` processes. Worker w
    collects its share with seed ``SEEDS[quality] * 10^7 + w * 10^6``; shares are concatenated in
    worker order, so the result depends on the seed, the sizes and ``workers`` only."""
    env_id = FAMILIES[family]
    shares = [size // workers + (w < size % workers) for w in range(workers)]
    jobs = [(family, quality, env_id, share, SEEDS[quality] * 10**7 + w * 10**6, num_envs,
             f"{family}-{quality} [{w + 1}/{workers}]") for w, share in enumerate(shares) if share > 0]
    if len(jobs) == 1:
        parts = [_collect_worker(jobs[0])]
    else:
        with worker_pool(len(jobs)) as pool:
            parts = pool.map(_collect_worker, jobs)
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def build_generated(name: str, path: Path, size: int | None = None, workers: int = 2,
                    from_run: Path | None = None, log: Callable[[str], None] = print) -> Path:
    family, quality = split_name(name)
    card = BehaviourCard.load(family)
    if quality == "medium-replay":
        arrays = medium_replay(card, from_run, size, log)
    elif quality == "medium-expert":
        half = (size or 2 * FULL_SIZE) // 2
        medium, expert = (_cached_or_collect(family, q, half, workers) for q in ("medium", "expert"))
        arrays = {key: np.concatenate([medium[key], expert[key]]) for key in medium}
    else:
        arrays = collect_policy(family, quality, size or FULL_SIZE, workers)
    recipe = {"name": name, "family": family, "quality": quality, "size": len(arrays["rewards"]),
              "workers": workers, "seeds": {q: SEEDS[q] for q in ("random", "medium", "expert") if q in quality},
              "behaviour": f"datasets/{family}/behaviour.json", "protocol": "D4RL"}
    metadata = {"env_id": card.env_id, "ref_min_score": card.ref_min_score, "ref_max_score": card.ref_max_score,
                "ref_episodes": card.ref_episodes, "algorithm": "SAC" if quality != "random" else "uniform random",
                "recipe": recipe}
    write_d4rl_hdf5(path, arrays, metadata)
    where = write_minari(minari_id(family, quality, size), arrays, card, recipe)
    log(f"offrl: Minari copy: {where} (replacing any earlier copy of that id; Minari reads it from "
        "$MINARI_DATASETS_PATH, default ~/.minari/datasets)")
    return path


def minari_id(family: str, quality: str, size: int | None) -> str:
    """``offrl/<family>/<quality>-v0``, with the size in the name for a build of another size, so a
    small build never replaces the full dataset."""
    return f"offrl/{family}/{quality}-v0" if size is None else f"offrl/{family}/{quality}-{size}-v0"


def _cached_or_collect(family: str, quality: str, size: int, workers: int) -> dict[str, np.ndarray]:
    """The transitions of ``<family>-<quality>`` at ``size``: read from the cache when that dataset
    was built already (same seeds, so the same data), else collected."""

    path = cache_file(f"{family}-{quality}", None if size == FULL_SIZE else size)
    if not path.exists():
        return collect_policy(family, quality, size, workers)
    keys = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")
    with h5py.File(path, "r") as handle:
        return {key: handle[key][()] for key in keys}


def medium_replay(card: BehaviourCard, from_run: Path | None, size: int | None,
                  log: Callable[[str], None]) -> dict[str, np.ndarray]:
    """The behaviour run's replay buffer up to the medium snapshot (one env, so its episodes are
    contiguous). Without ``from_run`` the recorded SAC run is repeated up to that step."""
    steps, rows = card.medium_step, card.medium_replay_rows
    scratch = None
    if from_run is None:

        scratch = Path(tempfile.mkdtemp(prefix="offrl-medium-replay-"))
        log(f"offrl: re-running the {card.family} SAC run to step {steps} for medium-replay (minutes)")
        cfg = {**card.train_config, "resume": None}
        cfg["trainer"] = {**cfg["trainer"], "steps": steps, "checkpoint_every": steps, "eval_every": 10**9,
                          "eval_episodes": 1, "snapshot_policies": False}
        train(cfg, scratch)
        from_run = scratch
    state = records.read_checkpoint(RunDir(from_run).last)
    replay = state["phases"].get("online", {}).get("replay")
    if scratch is not None and replay is not None and replay["size"] != rows:
        # Another CPU's floating point gives another run: its episodes end elsewhere, so the number of
        # rows written by the medium step differs from the recorded run's; take them all.
        log(f"offrl: the re-run wrote {replay['size']} replay rows by step {steps} (recorded run: {rows})")
        rows = replay["size"]
    if replay is None or replay["size"] < rows:
        raise DatasetError(f"{from_run}: the checkpoint's replay buffer holds "
                           f"{0 if replay is None else replay['size']} rows, medium-replay needs {rows}")
    n = min(rows, size or rows)
    dones, ends = replay["dones"][:n].numpy() > 0.5, replay["episode_ends"][:n].numpy()
    arrays = {"observations": replay["obs"][:n].numpy(), "actions": replay["actions"][:n].numpy(),
              "rewards": replay["rewards"][:n].numpy(), "next_observations": replay["next_obs"][:n].numpy(),
              "terminals": dones, "timeouts": ends & ~dones}
    arrays["timeouts"][-1] = not dones[-1]
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    return arrays


def write_minari(dataset_id: str, arrays: dict[str, np.ndarray], card: BehaviourCard, recipe: dict) -> Path:
    """The same transitions as a Minari dataset (replacing an older copy of the same id); its directory."""
    algorithm = "uniform random" if recipe["quality"] == "random" else "SAC"
    return write(dataset_id, arrays, card.env_id, algorithm=algorithm,
                 description=f"offrl D4RL-protocol dataset {recipe['name']} ({json.dumps(recipe)})",
                 ref_min_score=card.ref_min_score, ref_max_score=card.ref_max_score,
                 code_permalink="datasets/" + card.family, replace=True)


def _replay_rows_at(run_dir: Path, env_step: int) -> int:
    """Replay rows written by ``env_step`` of a one-env online run, from its last checkpoint: each
    episode end is followed by one autoreset step that writes no row (for snapshots that predate the
    ``replay_rows`` field)."""
    replay = records.read_checkpoint(RunDir(run_dir).last)["phases"]["online"]["replay"]
    ends = replay["episode_ends"].numpy()
    rows = np.arange(1, len(ends) + 1)
    steps_used = rows + np.concatenate([[0], np.cumsum(ends)[:-1]])  # env steps once row r is written
    return int(np.searchsorted(steps_used, env_step, side="right"))


def ship_behaviour(family: str, run_dir: Path, command: str, ref_episodes: int = 100,
                   log: Callable[[str], None] = print) -> BehaviourCard:
    """Pick the expert (best evaluated snapshot) and medium (the earlier snapshot whose return is
    closest to a third of the expert's) from a SAC run with ``trainer.snapshot_policies=true``, copy
    their actors to ``datasets/<family>/`` and measure the reference returns."""
    snapshots = sorted((Path(run_dir) / "snapshots").glob("step_*.pt"))
    if not snapshots:
        raise DatasetError(f"{run_dir}/snapshots: no policy snapshots (train with trainer.snapshot_policies=true)")
    loaded = {int(p.stem.split("_")[1]): records.read_checkpoint(p) for p in snapshots}
    returns = {step: snap["eval"]["return_mean"] for step, snap in loaded.items()}
    expert_step = max(returns, key=returns.get)
    target = returns[expert_step] / 3.0
    medium_step = min((s for s in returns if s < expert_step), key=lambda s: abs(returns[s] - target))
    out = behaviour_root() / family
    out.mkdir(parents=True, exist_ok=True)
    config = loaded[expert_step]["config"]
    for which, step in (("expert", expert_step), ("medium", medium_step)):
        actor = {k[len("actor."):]: v for k, v in loaded[step]["agent"].items() if k.startswith("actor.")}
        checkpoint.write_atomic(out / f"{which}.pt", lambda handle, actor=actor: torch.save(actor, handle),
                                "behaviour policy")
    card = BehaviourCard(
        family=family, env_id=FAMILIES[family], hidden_dims=list(config["agent"]["hidden_dims"]),
        train_config=config, train_command=command, expert_step=expert_step, medium_step=medium_step,
        medium_replay_rows=loaded[medium_step].get("replay_rows") or _replay_rows_at(run_dir, medium_step),
        snapshot_returns={"expert": returns[expert_step], "medium": returns[medium_step]},
        ref_min_score=0.0, ref_max_score=0.0, ref_episodes=ref_episodes, policy_returns={})
    # the actors are readable from here on; the reference returns follow
    checkpoint.write_text(out / "behaviour.json", json.dumps(card.__dict__, indent=2), "behaviour card")
    envs = make_vec_env(card.env_id, 10)
    for quality in ("random", "medium", "expert"):
        policy = make_behaviour(family, quality, seed=SEEDS[quality])
        card.policy_returns[quality] = evaluate(policy, envs, ref_episodes, seed=10**8).return_mean
        log(f"offrl: {family} {quality} policy: mean return {card.policy_returns[quality]:.1f} "
            f"over {ref_episodes} episodes")
    envs.close()
    card.ref_min_score, card.ref_max_score = card.policy_returns["random"], card.policy_returns["expert"]
    checkpoint.write_text(out / "behaviour.json", json.dumps(card.__dict__, indent=2), "behaviour card")
    return card
