"""``offrl eval``: evaluate (and film) a trained policy."""

from __future__ import annotations

import argparse
from typing import Any

from offrl.cli.parser import OneLineParser
from offrl.core.errors import OffrlError
from offrl.core.records import canonical_checkpoint
from offrl.tools.evaluation import EVAL_SEED_OFFSET, evaluate_run


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = OneLineParser(
        prog="offrl eval", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Evaluate a trained policy on fresh seeds: prints the return, the normalized score (where the run "
                    "has reference returns) and the success rate (where the env reports one); writes "
                    "<run dir>/eval_<checkpoint>.json.",
        epilog="""examples:
  offrl eval <run dir>                                 10 episodes of the policy at the end of training
  offrl eval <run dir> --checkpoint best --episodes 50 the policy of the best training evaluation
  offrl eval <run dir> --video hopper.mp4              ... and film its first episode (or .gif)
  offrl eval <run dir> --seed 100                      replay training's evaluations of a seed-0 run""")
    parser.add_argument("run_dir", help="a run directory written by offrl train")
    parser.add_argument("--checkpoint", default="last", help="last (default), best, or step_N (a snapshot)")
    parser.add_argument("--episodes", type=int, default=10, help="episodes to play (default 10)")
    parser.add_argument("--seed", type=int, default=None,
                        help=f"episode i is seeded SEED + i (default {EVAL_SEED_OFFSET} + the run's seed)")
    parser.add_argument("--video", default=None, help="record the first episode to FILE.mp4 or FILE.gif")
    parser.add_argument("--env", default=None, help="evaluate on another gymnasium env with the same spaces")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: one small MLP)")
    args = parser.parse_args(argv)
    if args.episodes <= 0:
        raise OffrlError(f"--episodes={args.episodes} must be a positive number of episodes")
    args.checkpoint = canonical_checkpoint(args.checkpoint)
    if args.threads <= 0:
        raise OffrlError(f"--threads={args.threads} must be a positive number of torch CPU threads")
    return args


def describe(result: dict[str, Any]) -> str:
    step = f", global step {result['global_step']}" if result.get("global_step") is not None else ""
    parts = [f"return {result['return_mean']:.1f} +- {result['return_std']:.1f}"]
    if "normalized_score" in result:
        parts.append(f"normalized score {result['normalized_score']:.1f} +- {result['normalized_score_std']:.1f}")
    if "success_rate" in result:
        parts.append(f"success rate {result['success_rate']:.2f}")
    first, last = result["seeds"]
    return (f"offrl: eval {result['agent']} on {result['env_id']} (checkpoint {result['checkpoint']}{step}), "
            f"{result['episodes']} episodes, seeds {first}-{last}: {', '.join(parts)}; results in {result['json']}")


def main(argv: list[str]) -> int:
    try:
        args = parse_args(list(argv))
        result = evaluate_run(args.run_dir, args.checkpoint, args.episodes, args.seed, args.video, args.env,
                              args.device, args.threads)
    except SystemExit as exit_:  # --help, or a usage error already printed (OffrlErrors: offrl.cli.main prints them)
        return exit_.code if isinstance(exit_.code, int) else 0
    print(describe(result))
    if "video" in result:
        v = result["video"]
        print(f"offrl: video of the first episode (seed {v['seed']}, return {v['episode_return']:.1f}, "
              f"{v['frames']} frames at {v['fps']:g} fps) written to {v['path']}")
    return 0
