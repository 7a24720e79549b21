#!/usr/bin/env bash
# The offline learning tables of experiments/results/ and the dataset analysis of
# experiments/results/dataset_analysis/: build the generated datasets, train BC, TD3+BC, PRDC, A2PR and
# O-DICE with the same gradient budget on 3 seeds (one 1-thread job at a time per sweep; run two sweeps
# side by side on 2 cores), the O-DICE update-mode ablation, BC and TD3+BC on the walker2d datasets,
# then aggregate.
# Usage: bash experiments/offline_table.sh [STEPS]   (default 10000 gradient steps per run)
set -euo pipefail
steps=${1:-10000}
for name in hopper-medium hopper-expert hopper-medium-expert halfcheetah-medium halfcheetah-expert \
            walker2d-medium walker2d-expert walker2d-medium-expert; do
  offrl datasets build "$name"
done
for family in hopper halfcheetah walker2d; do
  offrl datasets build $family-medium-replay --from-run "/work/behaviour/$family"   # or without: re-runs SAC
  offrl datasets build $family-random --size 100000
done

common="hydra/launcher=local hydra.launcher.n_jobs=1 threads=1 seed=0,1,2 trainer.steps=$steps
  trainer.eval_every=$steps trainer.eval_episodes=10"
sub='hydra.sweep.subdir=${agent.name}_${dataset.name}_s${seed}'
runs=experiments/runs
offrl train -m $common dataset=hopper-medium,hopper-medium-replay,halfcheetah-medium-replay \
  agent=bc,td3bc,prdc,a2pr hydra.sweep.dir=$runs/offline_table "$sub"
offrl train -m $common dataset=hopper-medium,hopper-medium-replay,halfcheetah-medium-replay agent=odice \
  hydra.sweep.dir=$runs/odice_table "$sub"
offrl train -m $common dataset=walker2d-medium,walker2d-medium-replay,walker2d-medium-expert agent=bc,td3bc \
  hydra.sweep.dir=$runs/offline_table_walker2d "$sub"
offrl train -m $common dataset=hopper-medium-replay agent=odice "agent.update_mode='true',semi" \
  hydra.sweep.dir=$runs/odice_ablation 'hydra.sweep.subdir=${agent.update_mode}_s${seed}'

python experiments/aggregate.py $runs/offline_table $runs/odice_table $runs/offline_table_walker2d \
  --out experiments/results/offline_table --command "bash experiments/offline_table.sh $steps"
python experiments/aggregate.py $runs/odice_table $runs/odice_ablation --by agent.update_mode \
  --dataset hopper-medium-replay --out experiments/results/odice_ablation \
  --command "bash experiments/offline_table.sh $steps"
