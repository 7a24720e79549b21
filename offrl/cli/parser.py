"""The argument parser every ``offrl`` subcommand uses, the value types they share, and how a training command
reports a run that stopped early."""

from __future__ import annotations

import argparse
import shlex
import sys

from offrl.core.errors import Interrupted, TrainingDiverged


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one ``offrl: error:`` line (and exit 2), like every other offrl
    error; every offrl subcommand parses with it."""

    def error(self, message: str):
        print(f"offrl: error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be a positive number")
    return value


def report_stop(stop: TrainingDiverged | Interrupted, command: str) -> int:
    """One line for a run that diverged, or two for one interrupted after its checkpoint (with the ``command``
    that continues it); the exit status."""
    if isinstance(stop, TrainingDiverged):
        print(f"offrl: training diverged: {stop}", file=sys.stderr)
        return 1
    print(f"offrl: interrupted at {stop.where}; checkpoint: {stop.checkpoint_path}\n"
          f"offrl: continue with: {command} resume={shlex.quote(str(stop.run_dir))}", file=sys.stderr)
    return stop.exit_status
