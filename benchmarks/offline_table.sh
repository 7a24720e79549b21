#!/usr/bin/env bash
# The offline learning table (docs/results/offline.md) and O-DICE's update-mode ablation: BC and TD3+BC on every generated
# hopper, halfcheetah and walker2d dataset below, PRDC, A2PR and O-DICE on hopper-medium, hopper-medium-replay
# and halfcheetah-medium-replay, O-DICE's 'semi' and 'true' update modes on hopper-medium-replay; the same
# gradient budget, seeds 0-2, 10 evaluation episodes at the end, one 1-thread job (2-core CPU: run two calls
# side by side at most, with different DATASETS or AGENTS). The medium-replay sets come last; finished runs,
# here or in the committed records, are skipped (benchmarks/lib.sh), so the sweep grows across sessions.
# Datasets are built on first use (a medium-replay set re-runs its recorded SAC run, ~80 min on one core).
# Table: python benchmarks/make_tables.py --archive --only offline_table odice_ablation
# Usage: bash benchmarks/offline_table.sh [STEPS] [AGENTS] [DATASETS]
#   defaults: 10000, "bc td3bc prdc odice a2pr", every dataset below (the medium-replay sets last)
set -euo pipefail
export OMP_NUM_THREADS=1
source "$(dirname "$0")/lib.sh"
steps=${1:-10000}
agents=${2:-bc td3bc prdc odice a2pr}
datasets=${3:-hopper-medium hopper-medium-expert hopper-expert halfcheetah-medium halfcheetah-medium-expert
  halfcheetah-expert walker2d-medium walker2d-medium-expert hopper-medium-replay halfcheetah-medium-replay
  walker2d-medium-replay}
common="threads=1 trainer.steps=$steps trainer.eval_every=$steps trainer.eval_episodes=10"
sub=offline_table
[ "$steps" = 10000 ] || sub=offline_table_$steps
for dataset in $datasets; do for agent in $agents; do
  case $agent/$dataset in
    bc/*|td3bc/*|*/hopper-medium|*/hopper-medium-replay|*/halfcheetah-medium-replay) ;;
    *) continue ;;  # PRDC, A2PR and O-DICE: three datasets (they cost 5-9x a TD3+BC update)
  esac
  for seed in 0 1 2; do
    train_once $sub ${agent}_${dataset}_s$seed agent=$agent dataset=$dataset seed=$seed $common
  done
  if [ "$agent/$dataset" = odice/hopper-medium-replay ]; then for mode in semi true; do for seed in 0 1 2; do
    train_once odice_ablation${sub#offline_table} ${mode}_s$seed agent=odice dataset=hopper-medium-replay \
      "agent.update_mode='$mode'" seed=$seed $common
  done; done; fi
done; done
