"""Runs inside a venv with d3rlpy 2.8 (not offrl's; how to make it: benchmarks/README.md#d3rlpy-venv). Two modes.

Speed only (bench_td3bc.py, bench_prdc.py, prdc_vs_d3rlpy_scores.py): d3rlpy's TD3+BC or PRDC on a D4RL-layout file,
and with ENV given also trained to the budget and evaluated like offrl (episode i seeded SEED + 100 + i):

    python d3rlpy_worker.py FILE STEPS WARMUP THREADS td3bc|prdc [ENV SEED EPISODES]  -> prints one JSON line

Parity (parity_d3rlpy.py): one d3rlpy run set up as a JSON spec says, on the transitions offrl's loader gave (an .npz
the parity script writes: offrl's rows, rewards after offrl's reward preprocessing, offrl's state statistics):

    python d3rlpy_worker.py --spec SPEC.json  -> writes the spec's "out" JSON (and prints it)

The spec names the algorithm (bc td3bc prdc iql cql rebrac calql), d3rlpy's config keywords, the encoders, the
budget (``steps`` offline updates; calql: ``steps`` pre-training updates then ``online_steps`` environment steps with
``updates_per_step`` updates each on batches mixing the dataset, share ``offline_fraction``, and the online replay),
and the evaluation (``episodes`` deterministic episodes, episode i seeded seed + 100 + i, scored with the file's
reference returns). Speed is recorded two ways: ``updates_per_s``, gradient updates over the seconds spent inside
``learner.update`` over the whole run (offrl's results.json accounting: the update alone, no sampling, logging or
evaluation), and ``loop_updates_per_s``, updates over the wall time of d3rlpy's own training loop between update
``warmup`` and the last offline update (sampling, its per-step metrics and logging included), as the speed mode.
"""

import json
import os
import platform
import sys
import time

import d3rlpy
import gymnasium as gym
import numpy as np
import torch


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--spec":
        with open(sys.argv[2]) as handle:
            spec = json.load(handle)
        result = run_spec(spec)
        text = json.dumps(result, indent=2)
        if spec.get("out"):
            with open(spec["out"] + ".tmp", "w") as handle:
                handle.write(text + "\n")
            os.replace(spec["out"] + ".tmp", spec["out"])
        print(json.dumps({k: v for k, v in result.items() if k not in ("config", "spec", "returns")}))
        return
    speed_mode()


# ---------------------------------------------------------------------- speed mode (unchanged protocol)
def speed_mode() -> None:
    import h5py

    path, steps, warmup, threads, algo = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    env_id, seed, episodes = (sys.argv[6], int(sys.argv[7]), int(sys.argv[8])) if len(sys.argv) > 6 else (None, 0, 0)
    torch.set_num_threads(threads)
    d3rlpy.seed(seed)
    with h5py.File(path) as f:
        arrays = {k: f[k][()] for k in ("observations", "actions", "rewards", "terminals", "timeouts")}
        ref = (float(f["metadata/ref_min_score"][()]), float(f["metadata/ref_max_score"][()]))
    dataset = d3rlpy.dataset.MDPDataset(
        arrays["observations"], arrays["actions"], arrays["rewards"],
        arrays["terminals"].astype(np.float32), timeouts=arrays["timeouts"].astype(np.float32),
        action_space=d3rlpy.constants.ActionSpace.CONTINUOUS)
    config = {"td3bc": d3rlpy.algos.TD3PlusBCConfig, "prdc": d3rlpy.algos.PRDCConfig}[algo]
    learner = config(batch_size=256, observation_scaler=d3rlpy.preprocessing.StandardObservationScaler()).create(
        device="cpu:0")
    marks = {}

    def callback(_learner, _epoch, total_step):
        if total_step in (warmup, warmup + steps):
            marks[total_step] = time.perf_counter()

    start = time.perf_counter()
    learner.fit(dataset, n_steps=warmup + steps, n_steps_per_epoch=warmup + steps, show_progress=False,
                logger_adapter=d3rlpy.logging.NoopAdapterFactory(), callback=callback, save_interval=10**9)
    elapsed = marks[warmup + steps] - marks[warmup]
    result = {"updates_per_s": steps / elapsed, "timed_s": elapsed, "warmup_s": marks[warmup] - start,
              "version": d3rlpy.__version__}
    if env_id:
        returns = [play(learner, env_id, seed + 100 + i) for i in range(episodes)]
        result.update(return_mean=float(np.mean(returns)), seed=seed, steps=warmup + steps,
                      normalized_score=100 * (float(np.mean(returns)) - ref[0]) / (ref[1] - ref[0]))
    print(json.dumps(result))


def play(learner, env_id: str, seed: int) -> float:
    """One episode of the deterministic policy (``predict``), the env reset with ``seed``: its return."""
    env = gym.make(env_id)
    obs, _ = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(learner.predict(obs[None].astype(np.float32))[0])
        total += float(reward)
        done = terminated or truncated
    env.close()
    return total


# ---------------------------------------------------------------------- parity mode
CONFIGS = {"bc": "BCConfig", "td3bc": "TD3PlusBCConfig", "prdc": "PRDCConfig", "iql": "IQLConfig",
           "cql": "CQLConfig", "calql": "CalQLConfig", "rebrac": "ReBRACConfig"}
# the config keyword each encoder goes to; BC has one encoder
ENCODER_KEYS = {"actor": "actor_encoder_factory", "critic": "critic_encoder_factory",
                "value": "value_encoder_factory", "policy": "encoder_factory"}


def load_dataset(path: str):
    """offrl's transitions as a d3rlpy MDPDataset holding exactly those transitions.

    d3rlpy reads s' as the next row of an episode, so an episode that ends without a terminal (a time limit, the
    data's end) would lose its last transition; one padding row per such episode (s' of the last transition, its
    action repeated, reward 0) keeps it: d3rlpy makes size - 1 transitions of an unterminated episode, so every row
    of offrl's and no padding row is a transition. A terminal transition's s' is d3rlpy's zeros (masked either way).
    The padding row's action is the last transition's a' (ReBRAC's critic penalty), its reward adds nothing to
    Cal-QL's returns-to-go."""
    data = np.load(path)
    obs, act, rew = data["observations"], data["actions"], data["rewards"]
    nxt, term, ends = data["next_observations"], data["terminals"].astype(bool), data["episode_ends"].astype(bool)
    inside = ~ends[:-1]  # s'_i must be s_{i+1} within an episode, or the data is not a sequence d3rlpy can read
    if not np.allclose(nxt[:-1][inside], obs[1:][inside], atol=1e-6):
        raise SystemExit(f"{path}: next_observations are not the following rows inside episodes")
    if (term & ~ends).any():
        raise SystemExit(f"{path}: terminals inside episodes (goal-conditioned data) are not supported here")
    ends[-1] = True
    pads = np.flatnonzero(ends & ~term)  # rows after which a padding row goes
    at = pads + 1  # np.insert puts a row before index at: after row pads
    observations = np.insert(obs, at, nxt[pads], axis=0)
    actions = np.insert(act, at, act[pads], axis=0)
    rewards = np.insert(rew, at, 0.0)
    terminals = np.insert(term.astype(np.float32), at, 0.0)
    timeouts = np.insert(np.zeros(len(obs), np.float32), at, 1.0)
    dataset = d3rlpy.dataset.MDPDataset(observations.astype(np.float32), actions.astype(np.float32),
                                        rewards.astype(np.float32), terminals, timeouts=timeouts,
                                        action_space=d3rlpy.constants.ActionSpace.CONTINUOUS)
    count = sum(episode.transition_count for episode in dataset.episodes)
    if count != len(obs):
        raise SystemExit(f"{path}: d3rlpy holds {count} transitions, offrl {len(obs)}")
    return dataset, data


def make_learner(spec: dict, data):
    """The d3rlpy learner the spec describes: its config keywords, encoders, optimiser schedule and scalers."""
    kwargs = dict(spec["config"])
    kwargs["batch_size"] = spec["batch_size"]
    for role, options in spec.get("encoders", {}).items():
        kwargs[ENCODER_KEYS[role]] = d3rlpy.models.encoders.VectorEncoderFactory(**options)
    if spec.get("actor_lr_cosine_steps"):
        kwargs["actor_optim_factory"] = d3rlpy.optimizers.AdamFactory(
            lr_scheduler_factory=d3rlpy.optimizers.CosineAnnealingLRFactory(T_max=int(spec["actor_lr_cosine_steps"])))
    if spec["normalize_states"]:  # offrl's statistics: (s - mean) / (std + 1e-3), d3rlpy's eps is offrl's
        kwargs["observation_scaler"] = d3rlpy.preprocessing.StandardObservationScaler(
            mean=data["obs_mean"].astype(np.float32), std=data["obs_std"].astype(np.float32), eps=1e-3)
    config = getattr(d3rlpy.algos, CONFIGS[spec["algo"]])(**kwargs)
    learner = config.create(device="cpu:0")
    if spec["algo"] == "prdc":
        # d3rlpy's class-level search runs on every core (n_jobs=-1); one thread, as every run here
        from sklearn.neighbors import NearestNeighbors
        learner._nbsr = NearestNeighbors(n_neighbors=1, algorithm="auto", n_jobs=spec["threads"])
    return learner


class UpdateClock:
    """Wraps ``learner.update`` (what fit and fit_online call per gradient step) to add up its time."""

    def __init__(self, learner) -> None:
        self.seconds, self.count, self._update = 0.0, 0, learner.update
        learner.update = self

    def __call__(self, batch):
        tick = time.perf_counter()
        out = self._update(batch)
        self.seconds += time.perf_counter() - tick
        self.count += 1
        return out


def evaluate(learner, env_id: str, seed: int, episodes: int, ref: tuple[float, float]) -> dict:
    """offrl's protocol: ``episodes`` deterministic episodes, episode i reset with seed + 100 + i."""
    returns = [play(learner, env_id, seed + 100 + i) for i in range(episodes)]
    mean = float(np.mean(returns))
    return {"return_mean": mean, "return_std": float(np.std(returns)), "returns": returns,
            "normalized_score": 100 * (mean - ref[0]) / (ref[1] - ref[0])}


def run_spec(spec: dict) -> dict:
    threads, seed, steps, warmup = spec["threads"], spec["seed"], spec["steps"], spec["warmup"]
    torch.set_num_threads(threads)
    started = time.perf_counter()
    d3rlpy.seed(seed)
    dataset, data = load_dataset(spec["data"])
    ref = (float(data["ref_min_score"]), float(data["ref_max_score"]))
    learner = make_learner(spec, data)
    clock = UpdateClock(learner)
    marks = {}
    window = (max(1, min(warmup, steps - 1)), steps)

    def callback(_learner, _epoch, total_step):
        if total_step in window:
            marks[total_step] = (time.perf_counter(), clock.count)

    fit_start = time.perf_counter()
    learner.fit(dataset, n_steps=steps, n_steps_per_epoch=steps, show_progress=False, save_interval=10**9,
                logger_adapter=d3rlpy.logging.NoopAdapterFactory(), callback=callback)
    fit_s = time.perf_counter() - fit_start
    (t0, n0), (t1, n1) = marks[window[0]], marks[window[1]]
    result = {"impl": "d3rlpy", "algo": spec["algo"], "seed": seed, "version": d3rlpy.__version__,
              "torch": torch.__version__, "python": platform.python_version(), "threads": threads,
              "offline_updates": clock.count, "fit_s": fit_s, "loop_window": list(window),
              "loop_updates_per_s": (n1 - n0) / (t1 - t0), "loop_timed_s": t1 - t0}
    online = spec.get("online_steps", 0)
    if online:
        result["pretrain_eval"] = evaluate(learner, spec["env_id"], seed, spec["episodes"], ref)
        env = gym.make(spec["env_id"])
        env.reset(seed=seed)  # offrl seeds its online env with the run's seed; fit_online's resets continue it
        env.action_space.seed(seed)
        fifo = d3rlpy.dataset.create_fifo_replay_buffer(limit=spec["buffer_size"], env=env)
        mixed = d3rlpy.dataset.MixedReplayBuffer(primary_replay_buffer=fifo, secondary_replay_buffer=dataset,
                                                 secondary_mix_ratio=spec["offline_fraction"])
        interval, per_step = _update_schedule(spec["updates_per_step"])
        online_start, before = time.perf_counter(), clock.count
        # d3rlpy samples the online share from the first step that holds a transition (its second); offrl updates
        # from the first step
        learner.fit_online(env, buffer=mixed, n_steps=online, n_steps_per_epoch=online, update_interval=interval,
                           n_updates=per_step, update_start_step=max(spec.get("online_warmup_steps", 0), 1),
                           random_steps=spec.get("online_warmup_steps", 0), show_progress=False,
                           save_interval=10**9, logger_adapter=d3rlpy.logging.NoopAdapterFactory())
        result.update(online_steps=online, online_updates=clock.count - before,
                      online_s=time.perf_counter() - online_start)
        env.close()
    final = evaluate(learner, spec["env_id"], seed, spec["episodes"], ref)
    result.update(final)
    result.update(updates=clock.count, update_s=clock.seconds, updates_per_s=clock.count / clock.seconds,
                  wall_s=time.perf_counter() - started, config=json.loads(learner.config.serialize()), spec=spec)
    return result


def _update_schedule(updates_per_step: float) -> tuple[int, int]:
    """(update_interval, n_updates) of d3rlpy's fit_online for offrl's updates per env step (1, 2, ... or 1/k)."""
    if updates_per_step >= 1:
        if updates_per_step != int(updates_per_step):
            raise SystemExit(f"updates_per_step={updates_per_step}: d3rlpy's fit_online takes whole updates per step")
        return 1, int(updates_per_step)
    interval = round(1 / updates_per_step)
    if abs(interval * updates_per_step - 1) > 1e-9:
        raise SystemExit(f"updates_per_step={updates_per_step}: d3rlpy's fit_online needs 1/k")
    return interval, 1


if __name__ == "__main__":
    main()
