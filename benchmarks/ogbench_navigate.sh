#!/bin/bash
# GCBC and GCIQL on OGBench's pointmaze-medium-navigate, on OGBench's protocol: its data recipe
# (offrl/generation/ogbench_maze.py) and its five evaluation tasks (10 episodes each here, OGBench 50), unnormalised
# observations, OGBench's network and batch (MLP 512x512x512, batch 1024, lr 3e-4), seeds 0-2, one 1-thread job
# per call (2-core CPU: two calls side by side at most).
#   bc:    GCBC, goals uniform over the episode's future, STEPS updates (default 20000: 2% of OGBench's 1M;
#          recorded 2026-12-02 and -03)
#   gciql: GCIQL with OGBench's pointmaze settings: expectile 0.9, DDPG+BC extraction with alpha 0.003,
#          LayerNorm in V and Q, the policy's std fixed at 1, the
#          value's goals 0.2 current / 0.5 future (geometric, 0.99) / 0.3 random with rewards success - 1, the
#          policy's goals uniform over the future; STEPS default 10000 (1% of OGBench's 1M: 1.5-3 updates/s on one core here;
#          recorded 2026-12-03)
# Runs that finished, here or in the committed records (benchmarks/records/ogbench_navigate), are skipped; a run
# stopped part-way resumes from its checkpoint, written every 500 updates (benchmarks/lib.sh).
# Table: python benchmarks/make_tables.py --archive --only ogbench_navigate
# Usage: bash benchmarks/ogbench_navigate.sh [bc|gciql] [STEPS] [SEEDS]   (defaults bc, see above, "0 1 2")
set -e
export OMP_NUM_THREADS=1
source "$(dirname "$0")/lib.sh"
method=${1:-bc}
seeds=${3:-0 1 2}
common="dataset=pointmaze-medium-navigate threads=1 agent.hidden_dims=[512,512,512] agent.normalize_states=false
  trainer.batch_size=1024 trainer.eval_episodes=50"
case $method in
  bc) agent=bc; steps=${2:-20000}; extra="" ;;
  gciql) agent=iql; steps=${2:-10000}
    extra="agent.extraction=ddpgbc agent.alpha=0.003 agent.expectile=0.9 agent.layer_norm=true
      agent.log_std_min=0 agent.log_std_max=0 dataset.relabel.p_current=0.2
      dataset.relabel.p_trajectory=0.5 dataset.relabel.p_random=0.3 dataset.relabel.geometric=0.99
      dataset.relabel.negative=true dataset.relabel.policy.enabled=true" ;;
  *) echo "ogbench_navigate.sh: method '$method' is unknown; expected bc or gciql" >&2; exit 2 ;;
esac
for seed in $seeds; do
  train_once ogbench_navigate ${agent}_pointmaze-medium-navigate_s$seed agent=$agent seed=$seed $common $extra \
    trainer.steps=$steps trainer.eval_every=$((steps / 4)) trainer.checkpoint_every=500
done
