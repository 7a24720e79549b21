"""Stop requests: Ctrl-C (SIGINT) or SIGTERM (what SLURM, Kubernetes and most schedulers send before they stop or
preempt a job) asks the work in progress to finish its step, save a checkpoint and stop.

There is one request per process, ``STOP``: the trainer reads it between steps, a sweep's jobs read it before they
start, and a sweep's parent passes the signal on to its jobs. A second signal aborts (KeyboardInterrupt), except
within ``REPEAT_S`` of the first: that is one request arriving twice (a terminal's Ctrl-C reaches a sweep's jobs
both directly and through their parent)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from offrl.core.progress import write

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
REPEAT_S = 1.0


@dataclass
class StopRequest:
    signum: int | None = None  # the first stop signal received, None while none has been
    at: float = 0.0  # when it arrived (time.monotonic)
    depth: int = 0  # nested catch_stop_signals blocks; the outermost one starts with no request

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_status(self) -> int:
        """The shell's status for the signal: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + int(self.signum or signal.SIGINT)


STOP = StopRequest()


@contextmanager
def catch_stop_signals(what: str, on_first: Callable[[int], None] | None = None) -> Iterator[StopRequest]:
    """While the block runs, SIGINT and SIGTERM set ``STOP`` (and call ``on_first`` with the signal, once) instead
    of raising; ``what`` says what happens next (``"stopping after this step and saving a checkpoint"``). Outside
    the main thread signals cannot be caught: the block runs without. The previous handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield STOP
        return
    if STOP.depth == 0:
        STOP.signum, STOP.at = None, 0.0

    def handler(signum, frame):
        if STOP.requested:
            if time.monotonic() - STOP.at < REPEAT_S:
                return
            raise KeyboardInterrupt
        STOP.signum, STOP.at = signum, time.monotonic()
        write(f"offrl: {signal.Signals(signum).name}: {what} (a second signal aborts)")
        if on_first is not None:
            on_first(signum)

    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    STOP.depth += 1
    try:
        yield STOP
    finally:
        STOP.depth -= 1
        for signum, old in previous.items():
            signal.signal(signum, old)
