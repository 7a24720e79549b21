"""``offrl report`` on the command line: parses its options, then finds the runs, builds the report and
writes it with the library in ``offrl.tools.report`` (whose docstring holds the rules the help text shows)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from offrl.cli.parser import OneLineParser
from offrl.core.errors import OffrlError
from offrl.tools import report as library
from offrl.tools.report import METRICS, build_report, find_runs, write_report


def _reps(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 10:
        raise argparse.ArgumentTypeError(f"{value} bootstrap replications are too few; use at least 10")
    return value


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated names")
    return names


def parser() -> argparse.ArgumentParser:
    rules = library.__doc__[library.__doc__.index("Rules"):].strip()
    examples = """examples:
  offrl report multirun/2026-11-27/10-00-00                    every run under a sweep directory
  offrl report runs/a runs/b --out reports/hopper --reps 50000  several directories, more replications
  offrl report runs --metric return_mean                        online runs (no reference returns)
  offrl report runs --by agent.update_mode --agents odice       one agent split by a config key"""
    p = OneLineParser(prog="offrl report", formatter_class=argparse.RawDescriptionHelpFormatter,
                      epilog=f"{rules}\n\n{examples}",
                      description="Tables, aggregate metrics with 95% bootstrap intervals, performance profiles, "
                                  "probability of improvement and learning curves for a set of runs (rliable); "
                                  "writes report.md, report.json and PNG figures into --out.")
    p.add_argument("dirs", nargs="+", type=Path, help="run directories or sweep directories (searched recursively)")
    p.add_argument("--out", type=Path, default=Path("offrl-report"), help="output directory (default ./offrl-report)")
    p.add_argument("--metric", choices=["auto", *METRICS], default="auto",
                   help="score of each run (default auto: normalized_score where every run has reference returns, "
                        "else return_mean)")
    p.add_argument("--reps", type=_reps, default=2000, help="bootstrap replications (default 2000)")
    p.add_argument("--by", help="split each agent by dotted config keys (comma-separated), e.g. agent.update_mode")
    p.add_argument("--agents", type=_names, help="only these agents (comma-separated; labels with --by)")
    p.add_argument("--datasets", type=_names, help="only these datasets (comma-separated)")
    p.add_argument("--include-in-progress", action="store_true",
                   help="count runs in progress (their latest evaluation) in the statistics")
    return p


def main(argv: list[str]) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 2
    try:
        runs = find_runs(args.dirs)
        if not runs:
            raise OffrlError(f"no runs found under {', '.join(str(d) for d in args.dirs)} (expected directories "
                             "with results.json, or config.yaml and checkpoints/last.pt for runs in progress)")
        report = build_report(runs, args.metric, args.reps, args.by, args.agents, args.datasets,
                              args.include_in_progress)
        command = "offrl report " + " ".join(argv)
        files = write_report(report, args.out, command)
    except OffrlError as err:
        print(f"offrl: error: {err}", file=sys.stderr)
        return 2
    running = sum(r["status"] != "finished" for r in report["runs"])
    print(f"offrl: report on {len(report['runs'])} run(s) ({running} in progress), {len(report['agents'])} agent(s) x "
          f"{len(report['datasets'])} dataset(s), metric {report['metric']}: {args.out / 'report.md'} "
          f"(+ report.json, {sum(k.endswith('.png') for k in files)} figures)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
