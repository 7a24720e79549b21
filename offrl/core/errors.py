"""Errors a user can fix. The CLI prints them on one line and exits with status 2."""


class OffrlError(Exception):
    """Bad input or configuration: the message names the file, key or shape and what was expected."""


class DatasetError(OffrlError):
    """A dataset cannot be read or does not fit the task."""


class ConfigError(OffrlError):
    """A configuration value is unknown or has the wrong type."""


class TrainingDiverged(RuntimeError):
    """A loss or parameter became NaN/inf; the last good checkpoint is kept."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM: the run stopped at a step boundary after writing a checkpoint. ``exit_status`` is the
    shell's for that signal (130 for SIGINT, 143 for SIGTERM)."""

    def __init__(self, run_dir, checkpoint_path, where: str, signum: int = 2) -> None:
        super().__init__(where)
        self.run_dir, self.checkpoint_path, self.where = run_dir, checkpoint_path, where
        self.exit_status = 128 + int(signum)
