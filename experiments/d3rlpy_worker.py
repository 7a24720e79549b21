"""Runs inside a venv with d3rlpy 2.8 (not offrl's): times d3rlpy's TD3+BC or PRDC on a D4RL-layout file.

    python d3rlpy_worker.py FILE STEPS WARMUP THREADS td3bc|prdc   -> prints one JSON line
"""

import json
import sys
import time

import d3rlpy
import h5py
import numpy as np
import torch


def main() -> None:
    path, steps, warmup, threads, algo = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    torch.set_num_threads(threads)
    with h5py.File(path) as f:
        arrays = {k: f[k][()] for k in ("observations", "actions", "rewards", "terminals", "timeouts")}
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
    print(json.dumps({"updates_per_s": steps / elapsed, "timed_s": elapsed, "warmup_s": marks[warmup] - start,
                      "version": d3rlpy.__version__}))


if __name__ == "__main__":
    main()
