#!/bin/bash
# Dynamics error vs guidance coefficient (docs/results/pgd.md, benchmarks/results/pgd_dynamics_hopper_medium/), 2026-12-02.
# Needs the IQL hopper-medium run of benchmarks/robotics.sh (benchmarks/runs/iql_check/iql_hopper-medium_s0).
set -e
export OMP_NUM_THREADS=1
offrl diffusion train dataset=hopper-medium preset=cpu steps=12000 dir=benchmarks/runs/pgd/hopper-medium
offrl diffusion dynamics benchmarks/runs/pgd/hopper-medium --agent-run benchmarks/runs/iql_check/iql_hopper-medium_s0 \
  --coef 0 0.3 1 3 --num 64 --out benchmarks/results/pgd_dynamics_hopper_medium
