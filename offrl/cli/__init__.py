"""offrl: offline and continuous-control reinforcement learning. Commands:

    offrl train [hydra overrides...]      train (Hydra-composed config, see conf/)
    offrl train resume=<run or sweep dir>  continue a run (or every stopped job of a sweep) from its checkpoint
    offrl datasets list                    datasets offrl can build, with size and reference returns
    offrl datasets build <name> [--size N] generate a dataset into the cache directory
    offrl datasets analyze <name> [...]    dataset quality report: TQ, SACo, episodes, coverage, plots
    offrl datasets to-minari SRC --id ID  write any dataset offrl reads as a local Minari dataset
    offrl datasets ship <family> --run DIR (maintainers) ship behaviour policies from a SAC run
    offrl eval <run dir> [--checkpoint last|best|step_N] [--video F]   evaluate (and film) a trained policy
    offrl export <run dir> --format torchscript|onnx                   a standalone deterministic policy
    offrl report <run or sweep dirs> [--out DIR]                       tables, IQM/CIs (rliable), figures
    offrl diffusion train dataset=<name> | sample <dir> --num N        trajectory diffusion model (PGD)

User mistakes (bad config, bad data) print one line and exit with status 2.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from importlib import import_module

from offrl.core.errors import OffrlError

# subcommand -> the module holding its ``main(argv)``. Loaded by name when the subcommand runs, so that
# ``offrl eval`` does not pay for Hydra and ``offrl --help`` for torch.
COMMANDS = {"train": "offrl.cli.train", "datasets": "offrl.cli.datasets", "eval": "offrl.cli.eval",
            "export": "offrl.cli.export", "report": "offrl.cli.report", "diffusion": "offrl.cli.diffusion"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command, rest = (argv[0], argv[1:]) if argv else ("--help", [])
    if command not in COMMANDS and command not in ("-h", "--help"):
        print(f"offrl: error: unknown command '{command}'; expected one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    # SIGTERM unwinds a command as Ctrl-C does (temp files removed, build workers stopped); training catches both
    # itself and checkpoints first
    previous = signal.signal(signal.SIGTERM, _terminate) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        if command in ("-h", "--help"):
            print(__doc__.strip())
            return 0
        return import_module(COMMANDS[command]).main(rest)
    except OffrlError as err:
        print(f"offrl: error: {err}", file=sys.stderr)
        return 2
    except Terminated:
        print("offrl: terminated (SIGTERM)", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("offrl: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into head & co.: stop quietly (Python docs' recipe)
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 0
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM outside training."""


def _terminate(signum, frame) -> None:
    raise Terminated
