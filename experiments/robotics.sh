#!/bin/bash
# The robotics runs behind the README's success-rate table (2026-12-02, one 1-thread job at a time on the
# 2-core CPU). Regenerate the table with: python experiments/make_readme_tables.py --only robotics --write-readme
set -e
export OMP_NUM_THREADS=1 MUJOCO_GL=egl
# goal-conditioned PointMaze (GCBC = agent=bc, GCIQL = agent=iql on relabelled goals), 20k updates
for seed in 0 1 2; do for agent in bc iql; do
  offrl train agent=$agent dataset=pointmaze-medium seed=$seed threads=1 trainer.steps=20000 trainer.eval_every=5000 \
    trainer.eval_episodes=20 hydra.run.dir=experiments/runs/gc_pointmaze/${agent}_pointmaze-medium_s$seed
done; done
# OGBench cube-single, single-task form (task 1), a 300k-transition play build, 10k updates
for agent in bc td3bc iql prdc a2pr odice; do for seed in 0 1 2; do
  offrl train agent=$agent dataset=cube-single-play-task1 dataset.size=300000 seed=$seed threads=1 trainer.steps=10000 \
    trainer.eval_every=5000 trainer.eval_episodes=10 hydra.run.dir=experiments/runs/cube_single/${agent}_cube-single-play-task1_s$seed
done; done
# IQL on hopper-medium, 10k updates
for seed in 0 1 2; do
  offrl train agent=iql dataset=hopper-medium seed=$seed threads=1 trainer.steps=10000 trainer.eval_every=5000 \
    trainer.eval_episodes=10 hydra.run.dir=experiments/runs/iql_check/iql_hopper-medium_s$seed
done
