#!/bin/bash
# EXPO vs SAC from scratch vs SAC with offline data (RLPD-style) at the same UTD, same env-step budget,
# 3 seeds, on a generated locomotion dataset (hopper-medium) and a sparse-reward goal task (PointMaze
# umaze, success rate). The CPU budget: agent=expo_cpu / trainer=expo_cpu (utd 2, 1000 warm-up steps),
# 5000 environment steps per run (the paper: 1M at utd 20). Two 1-thread jobs at a time.
#   SAC from scratch = the same offline_to_online run with trainer.offline_fraction=0 (no dataset rows in
#   any batch; the dataset only names the env), so the three differ only in the agent and the data share.
# Report: offrl report experiments/runs/expo --by agent,dataset ...  (see make_readme_tables.py --only expo)
set -e
export OMP_NUM_THREADS=1 MUJOCO_GL=egl
out=experiments/runs/expo
common="threads=1 trainer=expo_cpu trainer.steps=5000 trainer.eval_every=1000 trainer.checkpoint_every=1000 trainer.log_every=500"
offrl datasets build hopper-medium > /dev/null  # built once, before two jobs could race to build it
offrl datasets build pointmaze-umaze --size 200000 > /dev/null
jobs=()
for seed in 0 1 2; do
  for data in "hopper-medium" "pointmaze-umaze dataset.size=200000"; do
    name=${data%% *}
    episodes=$([ "$name" = pointmaze-umaze ] && echo 20 || echo 5)
    run="offrl train dataset=$data seed=$seed $common trainer.eval_episodes=$episodes"
    jobs+=("$run agent=expo_cpu hydra.run.dir=$out/expo_${name}_s$seed")
    jobs+=("$run agent=sac hydra.run.dir=$out/rlpd-sac_${name}_s$seed")
    jobs+=("$run agent=sac trainer.offline_fraction=0 hydra.run.dir=$out/sac_${name}_s$seed")
  done
done
# a run directory that already holds results is skipped; one with a checkpoint resumes
for job in "${jobs[@]}"; do
  dir=${job##*hydra.run.dir=}
  if [ -f "$dir/results.json" ]; then continue; fi
  if [ -f "$dir/checkpoints/last.pt" ]; then echo "offrl train resume=$dir"; else echo "$job"; fi
done | xargs -P 2 -I{} bash -c '{} > /dev/null 2>&1 || echo "failed: {}"'
