"""Dynamics error of synthetic transitions, measured with the simulator (beyond PGD's own tooling).

For gymnasium's MuJoCo locomotion tasks whose observation is (qpos[1:], qvel) (Hopper, Walker2d,
HalfCheetah: the x position does not affect the dynamics), each synthetic transition (s, a, r, s') is
replayed: the simulator is set to s (x = 0), the action is applied, and the simulator's next observation
and reward are compared with s' and r. This makes PGD's central trade-off measurable: guidance raises
the target policy's likelihood of the synthetic actions; how much does it cost in dynamics accuracy?

    offrl diffusion dynamics <model dir> --agent-run <run dir> [--coef 0 1 10] [--num N] [--out DIR]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from offrl.errors import OffrlError

LOCOMOTION = ("Hopper", "Walker2d", "HalfCheetah")


def replay(env_id: str, obs: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The simulator's next observations and rewards for (s, a) pairs of a locomotion task; actions in
    [-1, 1] are mapped to the env's bounds."""
    if not env_id.startswith(LOCOMOTION):
        raise OffrlError(f"env '{env_id}': dynamics replay needs a task whose observation is (qpos[1:], qvel) "
                         f"({', '.join(LOCOMOTION)})")
    env = gym.make(env_id).unwrapped
    nq, nv = env.model.nq, env.model.nv
    if obs.shape[1] != nq - 1 + nv:
        raise OffrlError(f"env '{env_id}': observations have {obs.shape[1]} values, expected qpos[1:] + qvel = "
                         f"{nq - 1 + nv}")
    low, high = env.action_space.low, env.action_space.high
    env.reset(seed=0)
    next_obs, rewards = np.empty_like(obs), np.empty(len(obs))
    for i, (s, a) in enumerate(zip(obs.astype(np.float64), actions.astype(np.float64))):
        env.set_state(np.concatenate([[0.0], s[: nq - 1]]), s[nq - 1:])
        o, r, *_ = env.step(low + (np.clip(a, -1, 1) + 1.0) * 0.5 * (high - low))
        next_obs[i], rewards[i] = o, r
    env.close()
    return next_obs, rewards


def dynamics_error(env_id: str, obs, actions, rewards, next_obs) -> dict[str, float]:
    """Mean squared next-observation error (raw units, averaged over dimensions), its value relative to
    the variance of the observations, and the mean absolute reward error."""
    obs, actions, rewards, next_obs = (np.asarray(x, dtype=np.float64) for x in (obs, actions, rewards, next_obs))
    sim_next, sim_rewards = replay(env_id, obs, actions)
    state_mse = ((sim_next - next_obs) ** 2).mean(axis=1)
    scale = obs.var(axis=0).mean() + 1e-12
    return {"transitions": len(obs), "next_obs_mse": float(state_mse.mean()),
            "next_obs_mse_relative": float(state_mse.mean() / scale),
            "next_obs_mse_median": float(np.median(state_mse)),
            "reward_abs_error": float(np.abs(sim_rewards - rewards).mean())}


def main(argv: list[str]) -> int:
    import argparse

    from offrl.cli import OneLineParser
    from offrl.diffusion.trajectory import load_model, sample
    from offrl.evaluation import load_policy

    parser = OneLineParser(prog="offrl diffusion dynamics", description=__doc__.splitlines()[0],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a model directory written by offrl diffusion train")
    parser.add_argument("--agent-run", required=True, help="a run directory whose agent guides the sampling")
    parser.add_argument("--coef", type=float, nargs="+", default=[0.0, 1.0, 10.0], help="guidance coefficients")
    parser.add_argument("--num", type=int, default=64, help="trajectories per coefficient")
    parser.add_argument("--horizon", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None, help="sampler steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--env", default=None, help="env to replay in (default: the model's dataset's env)")
    parser.add_argument("--out", type=Path, default=None, help="write dynamics.json and dynamics.md here")
    try:
        ns = parser.parse_args(argv)
    except SystemExit as exit_:
        return 2 if exit_.code else 0
    try:
        bad = [c for c in ns.coef if not np.isfinite(c) or c < 0]
        if bad:
            raise OffrlError(f"--coef {bad}: guidance coefficients must be finite numbers >= 0")
        policy = load_policy(ns.agent_run)
        model = load_model(ns.model, obs_dim=policy.agent.obs_dim, act_dim=policy.agent.act_dim)
        env_id = ns.env or (model.info or {}).get("env_id") or policy.run["env_id"]
        rows = []
        for coef in ns.coef:
            generator = torch.Generator().manual_seed(ns.seed)
            windows = sample(model, ns.num, guidance_coef=coef, agent=policy.agent if coef else None,
                             generator=generator, horizon=ns.horizon, obs_transform=policy.normalizer,
                             num_steps=ns.steps)
            batch = model.decode(windows.detach())
            with torch.no_grad():
                likelihood = policy.agent.log_prob(policy.normalizer(batch.obs), batch.actions).mean().item()
            error = dynamics_error(env_id, batch.obs.numpy(), batch.actions.numpy(), batch.rewards.numpy(),
                                   batch.next_obs.numpy())
            rows.append({"guidance_coef": coef, "agent_log_prob": likelihood, **error})
            print(f"coef {coef:g}: agent log-likelihood {likelihood:.3f}, next-obs MSE {error['next_obs_mse']:.4g} "
                  f"(relative {error['next_obs_mse_relative']:.3g}), reward error {error['reward_abs_error']:.4g}")
    except OffrlError as err:
        print(f"offrl: error: {err}", file=__import__("sys").stderr)
        return 2
    if ns.out is not None:
        ns.out.mkdir(parents=True, exist_ok=True)
        record: dict[str, Any] = {"command": "offrl diffusion dynamics " + " ".join(argv), "env_id": env_id,
                                  "model": str(ns.model), "agent_run": str(ns.agent_run), "rows": rows}
        (ns.out / "dynamics.json").write_text(json.dumps(record, indent=2))
        lines = [f"# Dynamics error vs guidance ({env_id})", "", f"`{record['command']}`", "",
                 "| guidance coef | agent log-likelihood | next-obs MSE | relative MSE | reward abs error |",
                 "|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['guidance_coef']:g} | {r['agent_log_prob']:.3f} | {r['next_obs_mse']:.4g} | "
                  f"{r['next_obs_mse_relative']:.3g} | {r['reward_abs_error']:.4g} |" for r in rows]
        (ns.out / "dynamics.md").write_text("\n".join(lines) + "\n")
    return 0
