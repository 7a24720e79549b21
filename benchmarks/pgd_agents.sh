#!/bin/bash
# Real vs unguided vs policy-guided synthetic data for TD3+BC and IQL (issue 13 evidence), 1-thread jobs on the
# 2-core CPU (one dataset per job; two side by side). Budget is a fraction of the paper's: the CPU-preset
# trajectory model trained for 12k steps, 10k agent updates per run (paper 1M), tables of TRAJECTORIES sampled
# trajectories (paper 8192 per refresh) regenerated every 5k updates (paper 10k of 1M; the first table unguided,
# the second guided at coefficient 1 by the agent at 5k updates), 10 evaluation episodes, seeds 0-2.
# Recorded: hopper-medium with 1024 trajectories (2026-12-02 morning), hopper-medium-replay and
# walker2d-medium-replay with 512 (2026-12-02 evening: half the sampling time, to fit both in one session).
# Runs that finished, here or in the committed records (benchmarks/records/pgd_agents), are skipped, so a
# killed job restarts where it stopped and a new machine runs only what the records lack.
# Usage: bash benchmarks/pgd_agents.sh DATASET [TRAJECTORIES] [AGENTS]   (defaults 1024, "td3bc iql"; two jobs
# side by side: one per agent, the second started once the first has trained the model)
# Table: python benchmarks/make_tables.py --archive --only pgd
set -e
export OMP_NUM_THREADS=1
dataset=${1:?dataset, e.g. hopper-medium-replay}
trajectories=${2:-1024}
agents=${3:-td3bc iql}
model=benchmarks/runs/pgd/$dataset
if [ ! -f $model/results.json ]; then
  if [ -f $model/checkpoints/last.pt ]; then offrl diffusion train resume=$model
  else offrl diffusion train dataset=$dataset preset=cpu steps=12000 dir=$model; fi
fi
for seed in 0 1 2; do for agent in $agents; do for synth in none unguided pgd; do
  dir=benchmarks/runs/pgd_agents/$dataset/${agent}_${synth}_s$seed
  [ -f $dir/results.json ] && continue
  [ -f benchmarks/records/pgd_agents/$dataset/${agent}_${synth}_s$seed/results.json ] && continue
  rm -rf $dir
  extra=""
  [ $synth != none ] && extra="synthetic.model=$model synthetic.num_trajectories=$trajectories synthetic.refresh_every=5000"
  offrl train agent=$agent dataset=$dataset seed=$seed threads=1 trainer.steps=10000 trainer.eval_every=5000 \
    trainer.eval_episodes=10 synthetic=$synth $extra hydra.run.dir=$dir
done; done; done
