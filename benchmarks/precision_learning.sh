#!/bin/bash
# Does bf16 change learning (issue 34; docs/guide/precision.md)? The same runs in fp32 and in bf16 (precision=bf16:
# matmuls and activations bf16, output layers, weights, optimiser state and targets fp32), compile=true, seeds 0-2,
# one 1-thread job (2-core CPU: two calls side by side at most). Finished runs, here or in the committed records, are
# skipped; a run stopped part-way resumes (benchmarks/lib.sh).
#   td3bc: TD3+BC on hopper-medium, STEPS offline updates (default 30000, 3% of the paper's 1M), 10 evaluation
#          episodes every 10,000 updates;
#   sac:   SAC on Hopper-v5, ENV_STEPS environment steps (default 30000), 10 evaluation episodes every 10,000.
# Table: python benchmarks/make_tables.py --archive --only precision_learning
# Usage: bash benchmarks/precision_learning.sh [PARTS] [SEEDS] [STEPS] [ENV_STEPS]
#   defaults: "td3bc sac", "0 1 2", 30000, 30000 (runs in benchmarks/runs/precision_learning; another budget goes to
#   precision_learning_STEPS, a run of its own)
set -e
export OMP_NUM_THREADS=1 MUJOCO_GL=egl
source "$(dirname "$0")/lib.sh"
parts=${1:-td3bc sac}
seeds=${2:-0 1 2}
steps=${3:-30000}
env_steps=${4:-30000}
sub() { [ "$1" = 30000 ] && echo precision_learning || echo "precision_learning_$1"; }
for part in $parts; do for seed in $seeds; do for precision in fp32 bf16; do
  case $part in
    td3bc) train_once "$(sub "$steps")" td3bc_hopper-medium_${precision}_s$seed agent=td3bc dataset=hopper-medium \
             seed=$seed precision=$precision compile=true threads=1 trainer.steps=$steps trainer.eval_every=10000 \
             trainer.eval_episodes=10 ;;
    sac) train_once "$(sub "$env_steps")" sac_Hopper-v5_${precision}_s$seed agent=sac env=Hopper-v5 seed=$seed \
           precision=$precision compile=true threads=1 trainer.steps=$env_steps trainer.eval_every=10000 \
           trainer.eval_episodes=10 ;;
    *) echo "precision_learning.sh: unknown part '$part' (td3bc, sac)" >&2; exit 2 ;;
  esac
done; done; done
