"""What a mixture policy buys: SAC vs PMOE on a one-step task with two equally good actions.

    python benchmarks/pmoe_two_peaks.py [--steps 3000] [--seeds 0 1 2]

The task: a constant observation, one action in [-1, 1], reward 10 exp(-(a - 0.6)^2 / 0.02) or
10 exp(-(a + 0.6)^2 / 0.02), whichever is larger, then the episode ends. Both agents start from
temperature 0.1 so that the short run is about the reward, not the entropy bonus. A unimodal SAC
policy must commit to one peak (or sit between them); a mixture could cover both, and whether it
does is what this measures. Runs SAC and PMOE with each gradient estimator (frequency = the
paper's, gumbel, score_function) on every seed and records the share of sampled actions at the
positive peak and the experts' means and router weights. Writes a histogram of sampled actions per
contender (first seed) to benchmarks/results/pmoe_two_peaks.png (+ .json, .md) and docs/figures/.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import date
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from offrl.training.run import train

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


CONTENDERS = {"sac": {"name": "sac"},
              **{f"pmoe-{e}": {"name": "pmoe", "num_experts": 4, "estimator": e}
                 for e in ("frequency", "gumbel", "score_function")}}


def train_and_sample(agent_cfg: dict, steps: int, seed: int) -> dict:
    from offrl.agents import make_agent

    cfg = {"seed": seed, "device": "cpu", "env": "offrl-demo/TwoPeaks-v0",
           "agent": {**agent_cfg, "hidden_dims": [64, 64], "init_temperature": 0.1},
           "trainer": {"mode": "online", "steps": steps, "warmup_steps": 500, "eval_every": steps,
                       "eval_episodes": 10, "checkpoint_every": 10**9}}
    with tempfile.TemporaryDirectory() as run_dir:
        results = train(cfg, run_dir)
        state = torch.load(Path(run_dir) / "checkpoints" / "last.pt", weights_only=False)
    agent = make_agent(cfg["agent"], 1, 1)
    agent.load_state_dict(state["agent"])
    with torch.no_grad():
        samples = agent.act(torch.zeros(5000, 1), deterministic=False)[:, 0].numpy()
    out = {"seed": seed, "eval_return": results["return_mean"], "share_positive": float((samples > 0).mean()),
           "samples": samples}
    if agent_cfg["name"] == "pmoe":
        with torch.no_grad():
            mean, _, logits = agent.actor.heads(torch.zeros(1, 1))
        out["expert_means"] = torch.tanh(mean)[0, :, 0].tolist()
        out["expert_weights"] = logits.softmax(-1)[0].tolist()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    gym.register("offrl-demo/TwoPeaks-v0", entry_point=TwoPeaks, max_episode_steps=1)
    torch.set_num_threads(1)
    runs = {name: [train_and_sample(cfg, args.steps, seed) for seed in args.seeds] for name, cfg in CONTENDERS.items()}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(4 * len(runs), 3.2), sharey=True)
    grid = np.linspace(-1, 1, 400)
    reward = np.maximum(np.exp(-((grid - 0.6) ** 2) / 0.02), np.exp(-((grid + 0.6) ** 2) / 0.02))
    for ax, (name, seeds) in zip(axes, runs.items()):
        first = seeds[0]
        ax.plot(grid, reward * 2.5, color="gray", lw=1, label="reward (scaled)")
        ax.hist(first["samples"], bins=80, range=(-1, 1), density=True, alpha=0.7, color="#E69F00",
                label="policy's sampled actions")
        ax.set(title=f"{name} (seed {first['seed']}), return {first['eval_return']:.2f}", xlabel="sampled action")
    axes[0].set_ylabel("density")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Two equally good actions, {args.steps} env steps")
    fig.tight_layout()
    out = HERE / "results" / "pmoe_two_peaks"
    fig.savefig(out.with_suffix(".png"), dpi=100)
    fig.savefig(HERE.parent / "docs" / "figures" / "pmoe_two_peaks.png", dpi=100)  # the figure the docs show
    record = {"command": "python benchmarks/pmoe_two_peaks.py " + " ".join(sys.argv[1:]),
              "date": date.today().isoformat(), "steps": args.steps,
              "runs": {name: [{k: v for k, v in r.items() if k != "samples"} for r in seeds]
                       for name, seeds in runs.items()}}
    out.with_suffix(".json").write_text(json.dumps(record, indent=2))
    lines = [f"# Two-peak bandit, {args.steps} env steps, seeds {args.seeds} ({record['date']})", "",
             f"Command: `{record['command']}`", "",
             "| contender | eval return per seed | share of sampled actions at the +0.6 peak, per seed |",
             "|---|---|---|"]
    for name, seeds in runs.items():
        returns = ", ".join(f"{r['eval_return']:.2f}" for r in seeds)
        shares = ", ".join(f"{r['share_positive']:.2f}" for r in seeds)
        lines.append(f"| {name} | {returns} | {shares} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
