#!/usr/bin/env bash
# The offline learning table of experiments/results/offline_table.md and the dataset analysis of
# experiments/results/dataset_analysis/: build the generated datasets, train BC, TD3+BC, PRDC and A2PR
# with the same gradient budget on 3 seeds (two 1-thread jobs at a time), aggregate, analyse.
# Usage: bash experiments/offline_table.sh [STEPS]   (default 10000 gradient steps per run)
set -euo pipefail
steps=${1:-10000}
datasets=hopper-medium,hopper-medium-replay,halfcheetah-medium-replay
for name in hopper-medium hopper-expert hopper-medium-expert halfcheetah-medium halfcheetah-expert; do
  offrl datasets build "$name"
done
offrl datasets build hopper-medium-replay --from-run "${HOPPER_RUN:-/work/behaviour/hopper}"
offrl datasets build halfcheetah-medium-replay --from-run "${HALFCHEETAH_RUN:-/work/behaviour/halfcheetah}"
offrl datasets build hopper-random --size 100000
offrl datasets build halfcheetah-random --size 100000

sweep=experiments/runs/offline_table
offrl train -m hydra/launcher=local threads=1 seed=0,1,2 dataset=$datasets agent=bc,td3bc,prdc,a2pr \
  trainer.steps=$steps trainer.eval_every=$steps trainer.eval_episodes=10 \
  hydra.sweep.dir=$sweep 'hydra.sweep.subdir=${agent.name}_${dataset.name}_s${seed}'
python experiments/aggregate.py $sweep --out experiments/results/offline_table \
  --command "bash experiments/offline_table.sh $steps"
