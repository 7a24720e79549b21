#!/bin/bash
# GCBC on OGBench's pointmaze-medium-navigate, on OGBench's protocol: its data recipe (offrl/data/ogbench_maze.py)
# and its five evaluation tasks (10 episodes each here, OGBench 50), OGBench's GCBC network and batch (MLP
# 512x512x512, batch 1024, lr 3e-4, unnormalised observations, goals uniform over the episode's future) for
# STEPS updates (default 20000: 2% of OGBench's 1M), seeds 0-2, one 1-thread job (2026-12-02, 2-core CPU).
# Table: python experiments/make_readme_tables.py --archive --only ogbench_navigate --write-readme
# Usage: bash experiments/ogbench_navigate.sh [STEPS]
set -e
export OMP_NUM_THREADS=1
steps=${1:-20000}
for seed in 0 1 2; do
  dir=experiments/runs/ogbench_navigate/bc_pointmaze-medium-navigate_s$seed
  [ -f $dir/results.json ] && continue
  rm -rf $dir
  offrl train agent=bc dataset=pointmaze-medium-navigate seed=$seed threads=1 'agent.hidden_dims=[512,512,512]' \
    agent.normalize_states=false trainer.batch_size=1024 trainer.steps=$steps trainer.eval_every=$((steps / 4)) \
    trainer.eval_episodes=50 hydra.run.dir=$dir
done
