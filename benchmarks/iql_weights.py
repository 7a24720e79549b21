"""What IQL's advantage weights do on a dataset: for each checkpoint given, the AWR weights
w = min(exp(beta (min_j Q_target_j(s, a) - V(s))), exp_adv_max) over every dataset row.

    python benchmarks/iql_weights.py <run dir> [<run dir> ...] [--checkpoints last best step_N ...]

Prints, per run and checkpoint: V and Q on the data, the advantage's mean and std, the share of clipped weights, and the
effective sample size of the weighted regression, ESS = (sum w)^2 / sum w^2, as a share of the rows: the
fraction of the dataset the policy is in effect fitted to. Records benchmarks/results/<--name>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def weights_of(run_dir: Path, which: str) -> dict:
    from omegaconf import OmegaConf

    from offrl.data.sources import DatasetConfig, load_dataset
    from offrl.data.store import TransitionStore
    from offrl.tools.evaluation import load_policy

    policy = load_policy(run_dir, which)
    agent, cfg = policy.agent, policy.config
    dataset_cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(DatasetConfig), cfg["dataset"]))
    data = load_dataset(dataset_cfg)
    store = TransitionStore.from_data(data)
    store.normalize_obs(policy.normalizer)
    obs, actions = store.obs[: len(store)], store.actions[: len(store)]
    with torch.no_grad():
        q = agent.critic_target(obs, actions).min(dim=-2).values
        v = agent.value(obs).squeeze(-1)
        advantage = q - v
        w = torch.exp(agent.cfg.beta * advantage).clamp(max=agent.cfg.exp_adv_max)
    ess = float(w.sum() ** 2 / (w**2).sum()) / len(w)
    return {"run": str(run_dir), "checkpoint": which, "global_step": policy.global_step, "rows": len(w),
            "beta": agent.cfg.beta, "reward_normalization": cfg["dataset"].get("reward_normalization"),
            "v_mean": float(v.mean()), "q_mean": float(q.mean()), "advantage_mean": float(advantage.mean()),
            "advantage_std": float(advantage.std()), "ess_share": ess,
            "clipped_share": float((w >= agent.cfg.exp_adv_max).float().mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--checkpoints", nargs="+", default=["last"], help="last, best or step_N (snapshots)")
    parser.add_argument("--name", default="iql_weights", help="results file stem under benchmarks/results")
    args = parser.parse_args()
    rows = [weights_of(run, which) for run in args.runs for which in args.checkpoints]
    record = {"command": "python benchmarks/iql_weights.py " + " ".join(sys.argv[1:]),
              "date": date.today().isoformat(), "runs": rows}
    out = HERE / "results"
    (out / f"{args.name}.json").write_text(json.dumps(record, indent=2) + "\n")
    table = ["| run | step | V on data | advantage mean +- std | clipped weights | ESS / rows |",
             "|---|---:|---:|---:|---:|---:|"]
    table += [f"| {Path(r['run']).name} | {r['global_step']} | {r['v_mean']:.1f} | {r['advantage_mean']:.2f} +- "
              f"{r['advantage_std']:.2f} | {r['clipped_share']:.3f} | {r['ess_share']:.3f} |" for r in rows]
    (out / f"{args.name}.md").write_text(f"# IQL's advantage weights on its dataset\n\n`{record['command']}`, "
                                        f"{record['date']}\n\n" + "\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
