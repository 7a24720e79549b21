#!/bin/bash
# EXPO vs SAC from scratch vs SAC with offline data (RLPD-style) at the same UTD, same env-step budget,
# 3 seeds, on a generated locomotion dataset (hopper-medium) and a sparse-reward goal task (PointMaze
# umaze, success rate). The CPU budget: agent=expo_cpu / trainer=expo_cpu (utd 2, 1000 warm-up steps),
# 5000 environment steps per run (the paper: 1M at utd 20). Two 1-thread jobs at a time.
#   SAC from scratch = the same offline_to_online run with trainer.offline_fraction=0 (no dataset rows in
#   any batch; the dataset only names the env), so the three differ only in the agent and the data share.
# Finished runs, here or in the committed records, are skipped and stopped ones resume (benchmarks/lib.sh).
# Tables: python benchmarks/make_tables.py --archive --only expo_hopper expo_pointmaze
# Usage: bash benchmarks/expo_evidence.sh [SEEDS] [DATASETS]   defaults: "0 1 2", "pointmaze-umaze hopper-medium"
set -e
export OMP_NUM_THREADS=1 MUJOCO_GL=egl
source "$(dirname "$0")/lib.sh"
export -f train_once
seeds=${1:-0 1 2}
datasets=${2:-pointmaze-umaze hopper-medium}
common="threads=1 trainer=expo_cpu trainer.steps=5000 trainer.eval_every=1000 trainer.checkpoint_every=1000 trainer.log_every=500"
# built once, before two jobs could race to build them
for name in $datasets; do
  case $name in
    pointmaze-umaze) offrl datasets build pointmaze-umaze --size 200000 > /dev/null ;;
    *) offrl datasets build "$name" > /dev/null ;;
  esac
done
for seed in $seeds; do for name in $datasets; do
  data=$name episodes=5
  [ "$name" = pointmaze-umaze ] && { data="pointmaze-umaze dataset.size=200000"; episodes=20; }
  run="dataset=$data seed=$seed $common trainer.eval_episodes=$episodes"
  echo "train_once expo expo_${name}_s$seed $run agent=expo_cpu"
  echo "train_once expo rlpd-sac_${name}_s$seed $run agent=sac"
  echo "train_once expo sac_${name}_s$seed $run agent=sac trainer.offline_fraction=0"
done; done | xargs -P 2 -I{} bash -c '{} > /dev/null 2>&1 || echo "failed: {}"'
