#!/bin/bash
# Does the CPU preset's smaller synthetic table (128 trajectories, the trajectory model's `synthetic_trajectories`
# since issue 35) change the policy-guided diffusion evidence recorded with 1024-trajectory tables
# (benchmarks/pgd_agents.sh, hopper-medium)? Same model recipe (CPU preset, 12k steps), same budget (10k TD3+BC
# updates, refresh every 5k: the first table unguided, the second guided), same seeds 0-2 and evaluation; only the
# table size differs (the preset's default instead of synthetic.num_trajectories=1024). Real-data runs are the
# recorded ones (benchmarks/records/pgd_agents/hopper-medium/td3bc_none_s*). 1-thread jobs; finished runs skipped.
# Usage: bash benchmarks/pgd_cpu_table.sh [DATASET]      Table: python benchmarks/make_tables.py --archive --only pgd
set -e
export OMP_NUM_THREADS=1
dataset=${1:-hopper-medium}
model=benchmarks/runs/pgd/$dataset
if [ ! -f $model/results.json ]; then
  if [ -f $model/checkpoints/last.pt ]; then offrl diffusion train resume=$model threads=1
  else offrl diffusion train dataset=$dataset preset=cpu steps=12000 dir=$model threads=1; fi
fi
for seed in 0 1 2; do for synth in unguided pgd; do
  dir=benchmarks/runs/pgd_cpu_table/$dataset/td3bc_${synth}_s$seed
  [ -f $dir/results.json ] && continue
  [ -f benchmarks/records/pgd_cpu_table/$dataset/td3bc_${synth}_s$seed/results.json ] && continue
  if [ -f $dir/checkpoints/last.pt ]; then offrl train resume=$dir threads=1; continue; fi
  rm -rf $dir
  offrl train agent=td3bc dataset=$dataset seed=$seed threads=1 trainer.steps=10000 trainer.eval_every=5000 \
    trainer.eval_episodes=10 synthetic=$synth synthetic.model=$model synthetic.refresh_every=5000 hydra.run.dir=$dir
done; done
