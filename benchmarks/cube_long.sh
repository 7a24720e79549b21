#!/bin/bash
# Why no offline agent solved cube-single-play-task1 in 10k updates (benchmarks/robotics.sh, docs/results/robotics.md):
# IQL with the settings of OGBench's single-task baselines (FQL's IQL: MLPs 512x512x512x512, LayerNorm in V and Q,
# expectile 0.9, AWR inverse temperature 10, the policy's std fixed at 1, batch 256, raw observations) on the same
# 300k-transition play build, twice the updates (20k, 2% of OGBench's 1M), evaluated every 5k updates
# (10 episodes of 200 steps). One 1-thread job, seed 0 (2026-12-03).
# Report: python benchmarks/make_tables.py --archive --only cube_long
set -e
export OMP_NUM_THREADS=1 MUJOCO_GL=egl
for seed in ${1:-0}; do
  run=iql_cube-single-play-task1_s$seed
  [ -f benchmarks/records/cube_long/$run/results.json ] && continue
  dir=benchmarks/runs/cube_long/$run
  rm -rf $dir
  offrl train agent=iql dataset=cube-single-play-task1 dataset.size=300000 seed=$seed threads=1 \
    'agent.hidden_dims=[512,512,512,512]' agent.layer_norm=true agent.log_std_min=0 agent.log_std_max=0 \
    agent.expectile=0.9 agent.beta=10 agent.normalize_states=false trainer.batch_size=256 trainer.steps=20000 \
    trainer.eval_every=5000 trainer.eval_episodes=10 hydra.run.dir=$dir
done
