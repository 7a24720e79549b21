#!/usr/bin/env bash
# Longer runs on hopper-medium-replay, seed 0: BC, TD3+BC and PRDC for 50k gradient steps (evaluated every 10k),
# O-DICE for 25k (every 5k), 10 evaluation episodes, one 1-thread job. Finished runs, here or in the committed
# records, are skipped (benchmarks/lib.sh).
# Report: python benchmarks/make_tables.py --archive --only long_hopper_mr
# Usage: bash benchmarks/long_hopper_mr.sh [AGENTS]   (default: "bc td3bc prdc odice")
set -euo pipefail
export OMP_NUM_THREADS=1
source "$(dirname "$0")/lib.sh"
for agent in ${1:-bc td3bc prdc odice}; do
  steps=50000 every=10000
  [ "$agent" = odice ] && steps=25000 every=5000  # O-DICE costs ~4x a TD3+BC update here
  train_once long_hopper_mr ${agent}_hopper-medium-replay_s0 agent=$agent dataset=hopper-medium-replay seed=0 \
    threads=1 trainer.steps=$steps trainer.eval_every=$every trainer.eval_episodes=10
done
