# Sourced by the experiment scripts.
# train_once SUBDIR RUN [offrl train overrides...]: train one run into benchmarks/runs/SUBDIR/RUN unless it finished
# there or in the committed records (benchmarks/records/SUBDIR/RUN); a run stopped part-way resumes from its
# checkpoint. So a sweep cut short by a session's end picks up where it stopped.
train_once() {
  local sub=$1 run=$2
  shift 2
  local dir=benchmarks/runs/$sub/$run
  [ -f "benchmarks/records/$sub/$run/results.json" ] && return 0
  [ -f "$dir/results.json" ] && return 0
  if [ -f "$dir/checkpoints/last.pt" ]; then
    offrl train resume="$dir"
    return
  fi
  rm -rf "$dir"
  offrl train "$@" hydra.run.dir="$dir"
}
