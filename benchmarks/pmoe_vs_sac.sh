#!/usr/bin/env bash
# The online table of docs/results/online.md: SAC and PMOE (K = 4, frequency estimator) on Hopper-v5 and HalfCheetah-v5, 30,000
# env steps (10k uniform warm-up, then one update per step), seeds 0-2, 10 evaluation episodes every 5k steps,
# one 1-thread job (2-core CPU: at most two calls side by side, with different AGENTS or ENVS). Finished runs,
# here or in the committed records, are skipped (benchmarks/lib.sh); the SB3 comparison
# (benchmarks/sac_vs_sb3_returns.py --offrl-from benchmarks/runs/pmoe_vs_sac) reuses the SAC runs.
# Table: python benchmarks/make_tables.py --archive --only pmoe_vs_sac
# Usage: bash benchmarks/pmoe_vs_sac.sh [AGENTS] [ENVS]   (defaults: "sac pmoe", "Hopper-v5 HalfCheetah-v5")
set -euo pipefail
export OMP_NUM_THREADS=1
source "$(dirname "$0")/lib.sh"
for env in ${2:-Hopper-v5 HalfCheetah-v5}; do for agent in ${1:-sac pmoe}; do for seed in 0 1 2; do
  train_once pmoe_vs_sac ${agent}_${env}_s$seed agent=$agent env=$env seed=$seed threads=1 trainer.steps=30000 \
    trainer.eval_every=5000 trainer.eval_episodes=10
done; done; done
