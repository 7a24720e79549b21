"""Runs inside a venv with d3rlpy 2.8 (not offrl's): times d3rlpy's TD3+BC or PRDC on a D4RL-layout file,
and with ENV given also trains to the budget and evaluates like offrl (episode i seeded SEED + 100 + i).

    python d3rlpy_worker.py FILE STEPS WARMUP THREADS td3bc|prdc [ENV SEED EPISODES]  -> prints one JSON line
"""

import json
import sys
import time

import d3rlpy
import gymnasium as gym
import h5py
import numpy as np
import torch


def main() -> None:
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
        returns = [evaluate(learner, env_id, seed + 100 + i) for i in range(episodes)]
        result.update(return_mean=float(np.mean(returns)), seed=seed, steps=warmup + steps,
                      normalized_score=100 * (float(np.mean(returns)) - ref[0]) / (ref[1] - ref[0]))
    print(json.dumps(result))


def evaluate(learner, env_id: str, seed: int) -> float:
    env = gym.make(env_id)
    obs, _ = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(learner.predict(obs[None].astype(np.float32))[0])
        total += float(reward)
        done = terminated or truncated
    return total


if __name__ == "__main__":
    main()
