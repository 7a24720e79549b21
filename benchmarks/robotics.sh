#!/bin/bash
# The robotics runs behind the success-rate table of docs/results/robotics.md (one 1-thread job at a time on the 2-core CPU; first
# made 2026-12-02, re-run with records 2026-12-03). Finished runs, here or in the committed records, are skipped
# (benchmarks/lib.sh). Table: python benchmarks/make_tables.py --archive --only robotics
set -e
export OMP_NUM_THREADS=1 MUJOCO_GL=egl
source "$(dirname "$0")/lib.sh"
# goal-conditioned PointMaze (GCBC = agent=bc, GCIQL = agent=iql on relabelled goals), 20k updates
for seed in 0 1 2; do for agent in bc iql; do
  train_once gc_pointmaze ${agent}_pointmaze-medium_s$seed agent=$agent dataset=pointmaze-medium seed=$seed threads=1 \
    trainer.steps=20000 trainer.eval_every=5000 trainer.eval_episodes=20
done; done
# OGBench cube-single and cube-double, single-task form (task 1), 300k-transition play builds, 10k updates
bash "$(dirname "$0")/cube_tasks.sh" cube-single-play-task1
bash "$(dirname "$0")/cube_tasks.sh" cube-double-play-task1
# IQL on hopper-medium, 10k updates
for seed in 0 1 2; do
  train_once iql_check iql_hopper-medium_s$seed agent=iql dataset=hopper-medium seed=$seed threads=1 \
    trainer.steps=10000 trainer.eval_every=5000 trainer.eval_episodes=10
done
