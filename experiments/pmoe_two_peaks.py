"""What a mixture policy buys: SAC vs PMOE on a one-step task with two equally good actions.

    python experiments/pmoe_two_peaks.py [--steps 3000]

The task: a constant observation, one action in [-1, 1], reward 10 exp(-(a - 0.6)^2 / 0.02) or
10 exp(-(a + 0.6)^2 / 0.02), whichever is larger, then the episode ends. Both agents start from
temperature 0.1 so that the short run is about the reward, not the entropy bonus. A unimodal SAC policy must
commit to one peak (or sit between them); PMOE's experts can cover both. Writes a histogram of
sampled actions of each trained policy to experiments/results/pmoe_two_peaks.png (+ .json).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from datetime import date
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from offrl.run import train

HERE = Path(__file__).resolve().parent


class TwoPeaks(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action):
        a = float(np.clip(action[0], -1, 1))
        reward = 10.0 * max(np.exp(-((a - 0.6) ** 2) / 0.02), np.exp(-((a + 0.6) ** 2) / 0.02))
        return np.zeros(1, np.float32), reward, True, False, {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    gym.register("offrl-demo/TwoPeaks-v0", entry_point=TwoPeaks, max_episode_steps=1)
    torch.set_num_threads(1)
    samples, returns = {}, {}
    for name, extra in (("sac", {}), ("pmoe", {"num_experts": 4})):
        cfg = {"seed": args.seed, "device": "cpu", "env": "offrl-demo/TwoPeaks-v0",
               "agent": {"name": name, "hidden_dims": [64, 64], "init_temperature": 0.1, **extra},
               "trainer": {"mode": "online", "steps": args.steps, "warmup_steps": 500, "eval_every": args.steps,
                           "eval_episodes": 10, "checkpoint_every": 10**9}}
        with tempfile.TemporaryDirectory() as run_dir:
            from offrl.agents import make_agent

            results = train(cfg, run_dir)
            state = torch.load(Path(run_dir) / "checkpoints" / "last.pt", weights_only=False)
        agent = make_agent(cfg["agent"], 1, 1)
        agent.load_state_dict(state["agent"])
        with torch.no_grad():
            samples[name] = agent.act(torch.zeros(5000, 1), deterministic=False)[:, 0].numpy()
        returns[name] = results["return_mean"]
        if name == "pmoe":
            with torch.no_grad():
                mean, _, logits = agent.actor.heads(torch.zeros(1, 1))
            experts = {"means": torch.tanh(mean)[0, :, 0].tolist(), "weights": logits.softmax(-1)[0].tolist()}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    grid = np.linspace(-1, 1, 400)
    reward = 0.5 * np.maximum(np.exp(-((grid - 0.6) ** 2) / 0.02), np.exp(-((grid + 0.6) ** 2) / 0.02))
    ax.plot(grid, reward * 5, color="gray", lw=1, label="reward (x 1/2)")
    for name, color in (("sac", "tab:blue"), ("pmoe", "tab:orange")):
        ax.hist(samples[name], bins=80, range=(-1, 1), density=True, alpha=0.55, color=color,
                label=f"{name} sampled actions (eval return {returns[name]:.2f})")
    ax.set_xlabel("action")
    ax.set_title(f"Two equally good actions, {args.steps} env steps")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = HERE / "results" / "pmoe_two_peaks"
    fig.savefig(out.with_suffix(".png"), dpi=100)
    share = {name: float((s > 0).mean()) for name, s in samples.items()}
    out.with_suffix(".json").write_text(json.dumps({
        "command": f"python experiments/pmoe_two_peaks.py --steps {args.steps}", "date": date.today().isoformat(),
        "eval_return": returns, "share_of_samples_at_positive_peak": share, "pmoe_experts": experts}, indent=2))
    print(json.dumps({"eval_return": returns, "share_positive": share, "pmoe_experts": experts}))


if __name__ == "__main__":
    main()
