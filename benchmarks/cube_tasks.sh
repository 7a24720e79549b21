#!/bin/bash
# The offline agents on an OGBench manipulation task in its single-task form, the budget of the robotics
# table: a 300k-transition play build (OGBench's recipe, 30% of its 1M), 10k updates (1% of OGBench's 1M), 10
# evaluation episodes at 5k and 10k, offrl's default agent settings, seeds 0-2, one 1-thread job (2-core CPU: two
# calls side by side at most). Finished runs, here or in the committed records, are skipped (benchmarks/lib.sh).
# Table: python benchmarks/make_tables.py --archive --only robotics
# Usage: bash benchmarks/cube_tasks.sh [DATASET] [AGENTS] [SEEDS] [STEPS]
#   defaults: cube-double-play-task1, "bc td3bc iql prdc a2pr odice", "0 1 2", 10000
#   (cube-single runs go to benchmarks/runs/cube_single, cube-double ones to benchmarks/runs/cube_double; another
#   STEPS adds _STEPS to the folder and evaluates every 10k updates: the budget question of docs/results/robotics.md)
set -e
export OMP_NUM_THREADS=1 MUJOCO_GL=egl
source "$(dirname "$0")/lib.sh"
dataset=${1:-cube-double-play-task1}
agents=${2:-bc td3bc iql prdc a2pr odice}
seeds=${3:-0 1 2}
steps=${4:-10000}
case $dataset in
  cube-single-*) sub=cube_single ;;
  cube-double-*) sub=cube_double ;;
  *) echo "cube_tasks.sh: dataset '$dataset' is not a cube-single or cube-double task" >&2; exit 2 ;;
esac
every=5000
[ "$steps" = 10000 ] || { sub=${sub}_$steps; every=10000; }
offrl datasets build "${dataset%-task*}" --size 300000
for agent in $agents; do for seed in $seeds; do
  train_once $sub ${agent}_${dataset}_s$seed agent=$agent dataset=$dataset dataset.size=300000 seed=$seed threads=1 \
    trainer.steps=$steps trainer.eval_every=$every trainer.eval_episodes=10
done; done
