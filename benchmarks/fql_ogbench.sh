#!/bin/bash
# FQL against IQL and ReBRAC on OGBench manipulation in the FQL paper's setting (docs/algorithms/fql.md): the five
# single-task forms of cube-single-play and of cube-double-play (the harder dataset), OGBench's 1M-transition builds,
# batches of 256, 4 x 512 networks, 50 evaluation episodes (seohongpark/fql main.py's eval_episodes) every 100k
# updates (its eval_interval; a shorter run evaluates once, at its end), seeds 0-2, one 1-thread job. FQL's alpha
# comes from conf/tuning/fql_<dataset>.yaml (300 on both families, the official README's). The baselines take the
# FQL repository's configs (agents/iql.py, agents/rebrac.py get_config) where offrl has the option: IQL with
# expectile 0.9, inverse temperature 10, a fixed unit std and LayerNorm; ReBRAC with lr 3e-4 and offrl's default
# betas (the official get_config leaves alpha_actor and alpha_critic at 0, to be tuned per task).
# The paper trains 1M updates; FQL's update takes about 0.25 s on one CPU core (benchmarks/bench_fql.py), hence the
# STEPS argument. Finished runs, here or in the committed records, are skipped; a run stopped part-way resumes from
# its checkpoint (benchmarks/lib.sh).
# Usage: bash benchmarks/fql_ogbench.sh [STEPS] [AGENTS] [SEEDS] [DATASETS] [SIZE] [TASKS]
#   defaults: 100000, "fql iql rebrac", "0 1 2", "cube-single-play cube-double-play", 1000000, "1 2 3 4 5"
#   runs go to benchmarks/runs/fql_ogbench (another STEPS: fql_ogbench_STEPS), one per agent, task and seed
set -e
export OMP_NUM_THREADS=1 MUJOCO_GL=egl
source "$(dirname "$0")/lib.sh"
steps=${1:-100000}
agents=${2:-fql iql rebrac}
seeds=${3:-0 1 2}
families=${4:-cube-single-play cube-double-play}
size=${5:-1000000}
tasks=${6:-1 2 3 4 5}
every=$(( steps < 100000 ? steps : 100000 ))
sub=fql_ogbench
[ "$steps" = 100000 ] || sub=${sub}_$steps
nets="agent.hidden_dims=[512,512,512,512]"
declare -A settings=(
  [fql]=""
  [iql]="$nets agent.layer_norm=true agent.expectile=0.9 agent.beta=10 agent.log_std_min=0 agent.log_std_max=0"
  [rebrac]="$nets agent.actor_lr=3e-4 agent.critic_lr=3e-4"
)
for family in $families; do
  case $family in
    cube-single-play|cube-double-play) ;;
    *) echo "fql_ogbench.sh: dataset '$family' is not cube-single-play or cube-double-play" >&2; exit 2 ;;
  esac
  offrl datasets build "$family" --size "$size"
  for task in $tasks; do for agent in $agents; do for seed in $seeds; do
    dataset=$family-task$task
    # shellcheck disable=SC2086  # the agent's settings are several overrides
    train_once $sub ${agent}_${dataset}_s$seed agent=$agent dataset=$dataset dataset.size=$size seed=$seed threads=1 \
      trainer.steps=$steps trainer.batch_size=256 trainer.eval_every=$every trainer.eval_episodes=50 ${settings[$agent]}
  done; done; done
done
