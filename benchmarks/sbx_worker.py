"""Runs inside a venv with sbx-rl (SBX, the JAX port of stable-baselines3; its jax conflicts with nothing of
offrl's, but it is kept out of offrl's venv): times SBX's SAC on ENV with the hyperparameters of
bench_sac_vs_sb3.py, over the same window (after WARMUP random steps, until STEPS).

    python sbx_worker.py ENV STEPS WARMUP SEED [SETTLE]  -> prints one JSON line (SETTLE: env steps after the warm-up
    before the steady window)
"""

import json
import sys
import time

import gymnasium as gym
import jax
import sbx
from sbx import SAC
from stable_baselines3.common.callbacks import BaseCallback


def main() -> None:
    env_id, steps, warmup, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    settle = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    marks: dict[int, float] = {}

    class Clock(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps in (warmup, warmup + settle, steps):
                marks[self.num_timesteps] = time.perf_counter()
            return True

    model = SAC("MlpPolicy", gym.make(env_id), learning_rate=3e-4, buffer_size=1_000_000, learning_starts=warmup,
                batch_size=256, tau=0.005, gamma=0.99, train_freq=1, gradient_steps=1, ent_coef="auto",
                policy_kwargs={"net_arch": [256, 256]}, seed=seed, verbose=0)
    model.learn(total_timesteps=steps, callback=Clock())
    window = marks[steps] - marks[warmup]
    print(json.dumps({"env_steps_per_s": (steps - warmup) / window, "window_s": window,
                      "steady_env_steps_per_s": (steps - warmup - settle) / (marks[steps] - marks[warmup + settle]),
                      "version": f"sbx {sbx.__version__}, jax {jax.__version__}"}))


if __name__ == "__main__":
    main()
