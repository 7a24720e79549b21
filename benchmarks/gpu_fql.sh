#!/bin/bash
# The prepared GPU check of issue 33 (FQL), for a session that is lent a GPU (one 10-minute device command):
#   1. FQL and IQL updates/s at the paper's sizes, side by side (benchmarks/bench_fql.py --device cuda);
#   2. cube-single-play built with all the machine's cores (OGBench's 1M transitions; about 4 min on 16 cores);
#   3. FQL on cube-single-play-task1, 3 seeds in one process (seeds=[0,1,2]), STEPS updates (default 100000, a
#      tenth of the paper's 1M), 50 evaluation episodes at the end: run records copied under $OUT/fql_gpu.
# On the CPU machine afterwards: copy $OUT/fql_gpu/* into benchmarks/records/fql_gpu/ and regenerate the tables.
# Usage (device tool): bash benchmarks/gpu_fql.sh [STEPS]
set -e
steps=${1:-100000}
out=${OUT:-/tmp/gpu_fql_out}
mkdir -p "$out/fql_gpu"
export HF_HUB_OFFLINE=1 MUJOCO_GL=egl
[ -x .venv/bin/offrl ] || { python3 -m venv .venv && .venv/bin/pip install -q -e . ; }
. .venv/bin/activate
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/fql_gpu/device.txt"
timeout 120 python benchmarks/bench_fql.py --device cuda 2>&1 | tee "$out/fql_gpu/bench_fql.txt" || true
offrl datasets build cube-single-play --workers "$(nproc)"
dir=benchmarks/runs/fql_gpu/fql_cube-single-play-task1_steps$steps
offrl train agent=fql dataset=cube-single-play-task1 'seeds=[0,1,2]' trainer.steps="$steps" \
  trainer.eval_every="$steps" trainer.eval_episodes=50 hydra.run.dir="$dir"
cp -r "$dir" "$out/fql_gpu/" && rm -rf "$out/fql_gpu/$(basename "$dir")/checkpoints"
