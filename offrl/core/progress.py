"""Progress for long work: a tqdm bar on a terminal; elsewhere (logs, SLURM, CI) one plain status line
per interval, so a log file gets a readable line every ``log_interval_s`` instead of thousands of
carriage-return updates."""

from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm

LOG_INTERVAL_S = 30.0


def progress(total: int, desc: str, unit: str = "step", initial: int = 0):
    if sys.stderr.isatty():
        return tqdm(total=total, initial=initial, desc=desc, unit=unit, mininterval=1.0)
    return StatusLines(total, desc, unit, initial)


def write(text: str) -> None:
    """A console line that does not break a running bar."""
    tqdm.write(text)


class StatusLines:
    """The part of tqdm's interface offrl uses (update, close, context manager), as periodic lines:
    ``offline: 5000/20000 step (25%), 131 step/s, 1:54 left``."""

    def __init__(self, total: int, desc: str, unit: str, initial: int = 0, interval_s: float = LOG_INTERVAL_S) -> None:
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.interval_s = interval_s
        self.start = self.last = time.perf_counter()
        self.start_n = initial

    def update(self, k: int = 1) -> None:
        self.n += k
        now = time.perf_counter()
        if now - self.last >= self.interval_s:
            self.last = now
            self._line(now)

    def _line(self, now: float) -> None:
        rate = (self.n - self.start_n) / max(now - self.start, 1e-9)
        share = f" ({100.0 * self.n / self.total:.0f}%)" if self.total else ""
        running = self.total and 0 < self.n < self.total and rate > 0
        left = f", {_clock((self.total - self.n) / rate)} left" if running else ""
        print(f"{self.desc}: {self.n}/{self.total} {self.unit}{share}, {rate:.0f} {self.unit}/s{left}",
              file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.n != self.start_n:
            self._line(time.perf_counter())

    def __enter__(self) -> StatusLines:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _clock(seconds: float) -> str:
    """1:54, or 2:03:10 past an hour (tqdm's format)."""
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
