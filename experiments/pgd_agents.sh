#!/bin/bash
# Real vs unguided vs policy-guided synthetic data for TD3+BC and IQL on hopper-medium (issue 13 evidence),
# 2026-12-02, 1-thread jobs on the 2-core CPU. Budget is a fraction of the paper's: 10k agent updates (paper 1M),
# tables of 1024 sampled trajectories (paper ~8k per refresh) regenerated every 5k updates (paper 10k of 1M), the
# CPU-preset trajectory model of experiments/pgd_dynamics.sh (12k steps). Usage: pgd_agents.sh td3bc|iql
# Table: python experiments/make_readme_tables.py --only pgd
set -e
export OMP_NUM_THREADS=1
agent=${1:?agent: td3bc or iql}
model=experiments/runs/pgd/hopper-medium
for seed in 0 1 2; do for synth in none unguided pgd; do
  dir=experiments/runs/pgd_agents/${agent}_${synth}_s$seed
  [ -f $dir/results.json ] && continue
  rm -rf $dir
  extra=""
  [ $synth != none ] && extra="synthetic.model=$model synthetic.num_trajectories=1024 synthetic.refresh_every=5000"
  offrl train agent=$agent dataset=hopper-medium seed=$seed threads=1 trainer.steps=10000 trainer.eval_every=5000 \
    trainer.eval_episodes=10 synthetic=$synth $extra hydra.run.dir=$dir
done; done
