"""The argument parser every ``offrl`` subcommand uses, and the value types they share."""

from __future__ import annotations

import argparse
import sys


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
