"""Every file offrl writes goes through one atomic writer: a full disk, a failing write or an unusable target is one
line naming the path, the previous file stays intact and no temp file is left. Unusable targets are simulated with
a path under a regular file (refused for every user, root included) or a directory where the file should be."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

from offrl.cli import main
from offrl.core import checkpoint, records
from offrl.core.errors import OffrlError
from offrl.data.d4rl import write_d4rl_hdf5
from tests.conftest import FAST, make_episodes


def _full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _write_record(path: Path) -> None:
    records.write_results(path.parent, {"return_mean": 1.0})


def _write_dataset(path: Path) -> None:
    write_d4rl_hdf5(path, make_episodes([5, 5], ["terminal", "timeout"]))


def _write_figure(path: Path) -> None:
    from matplotlib.figure import Figure

    from offrl.tools.report.figures import _save

    figure = Figure()
    figure.add_subplot().plot([0, 1], [1, 0])
    _save(figure, path)


WRITERS = {  # what is written: (writer, file name, the call that fails on a full disk)
    "run record": (_write_record, "results.json", (os, "fsync")),
    "dataset": (_write_dataset, "data.hdf5", (h5py.Group, "create_dataset")),
    "figure": (_write_figure, "curve.png", (os, "fsync")),
}


@pytest.mark.parametrize("what", list(WRITERS))
def test_a_full_disk_keeps_the_previous_file_and_leaves_no_temp_file(tmp_path, monkeypatch, what):
    write, name, (owner, attribute) = WRITERS[what]
    path = tmp_path / name
    write(path)
    before = path.read_bytes()
    monkeypatch.setattr(owner, attribute, _full_disk)
    with pytest.raises(OffrlError) as err:
        write(path)
    monkeypatch.undo()
    message = str(err.value)
    assert message.startswith(f"{path}: cannot write ") and "No space left on device" in message
    assert "is intact" in message and "\n" not in message
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


@pytest.mark.parametrize("what", list(WRITERS))
def test_an_unusable_target_is_one_line(tmp_path, what):
    write, name, _ = WRITERS[what]
    (tmp_path / "a file").write_text("")
    with pytest.raises(OffrlError, match=r"a file/.*: cannot write .* \((Not a directory|File exists)\)$"):
        write(tmp_path / "a file" / name)
    (tmp_path / name).mkdir()  # a directory where the file goes
    with pytest.raises(OffrlError, match="cannot write .*Is a directory"):
        write(tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a file", name]


def test_interrupted_writes_leave_no_temp_file(tmp_path):
    path = tmp_path / "results.json"
    with pytest.raises(KeyboardInterrupt), checkpoint.atomic_path(path, "run record") as tmp:
        tmp.write_text("half")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- through the commands
def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_an_unusable_dataset_cache_is_one_line_and_leaves_no_run_directory(tmp_path, monkeypatch, capsys):
    (tmp_path / "a file").write_text("")
    monkeypatch.setenv("OFFRL_DATA_DIR", str(tmp_path / "a file" / "cache"))
    monkeypatch.chdir(tmp_path)
    assert main(["train", *FAST, "trainer.steps=10", f"hydra.run.dir={tmp_path / 'run'}"]) == 2
    assert "cannot write the dataset cache (Not a directory)" in _one_line(capsys)
    assert main(["datasets", "build", "idp-mixed", "--size", "3000"]) == 2
    assert "set OFFRL_DATA_DIR to a writable directory" in _one_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a file"]


def test_reports_and_evaluations_that_cannot_be_written_are_one_line(tmp_path, small_default_dataset, capsys):
    run = tmp_path / "run"
    assert main(["train", *FAST, "trainer.steps=10", "threads=1", f"hydra.run.dir={run}"]) == 0
    capsys.readouterr()
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    (run / "eval_last.json").mkdir()
    assert main(["eval", str(run), "--episodes", "1"]) == 2
    assert f"{run / 'eval_last.json'}: cannot write evaluation (Is a directory)" in _one_line(capsys)
    (run / "eval_last.json").rmdir()
    (tmp_path / "a file").write_text("")
    assert main(["report", str(run), "--out", str(tmp_path / "a file" / "report"), "--reps", "10"]) == 2
    _one_line(capsys)
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    assert not list(tmp_path.rglob("*.tmp*"))


def test_dataset_files_of_an_interrupted_writer_are_its_own(tmp_path):
    """Two writers of one dataset never share a temp file: each has its process's own."""
    path = tmp_path / "data.hdf5"
    with checkpoint.atomic_path(path, "dataset") as tmp:
        assert str(os.getpid()) in tmp.name and tmp.suffix == ".hdf5" and tmp.parent == tmp_path
        tmp.write_bytes(b"x")
    assert path.read_bytes() == b"x"


def test_temp_files_of_killed_writers_are_removed_by_the_next_write(tmp_path):
    path = tmp_path / "data.hdf5"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".data.{dead.pid}.tmp.hdf5"
    alive = tmp_path / f".data.{os.getppid()}.tmp.hdf5"  # a live writer's: kept
    stale.write_bytes(b"torn")
    alive.write_bytes(b"in progress")
    _write_dataset(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [alive.name, "data.hdf5"]


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_build_workers_exit_when_their_parent_is_killed():
    """A dataset build killed with SIGKILL leaves no worker processes behind to finish their share for nobody."""
    script = ("import time\nfrom offrl.generation.collect import worker_pool\n"
              "if __name__ == '__main__':\n    with worker_pool(2) as pool:\n        pool.map(time.sleep, [60, 60])\n")
    parent = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 60
    while len(workers := _children(parent.pid)) < 3 and time.time() < deadline:  # 2 workers + the resource tracker
        time.sleep(0.1)
    workers = [pid for pid in workers if "resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_text()]
    assert len(workers) == 2
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 10
    while any(Path(f"/proc/{pid}").exists() and "Z" not in _state(pid) for pid in workers) and time.time() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists() and "Z" not in _state(pid)]


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_sigterm_to_a_dataset_build_exits_143_and_leaves_no_partial_file(tmp_path):
    env = {**os.environ, "OFFRL_DATA_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "offrl.cli", "datasets", "build", "idp-mixed", "--size", "2000000"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert "building dataset" in proc.stdout.readline()
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "Traceback" not in err and "terminated" in err, err
    assert [p.name for p in tmp_path.iterdir()] == [".locks"]
