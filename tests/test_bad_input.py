"""Bad data files, table-driven over every reader: each class of damage is refused at load with one
line naming the file and key (exit 2 through the CLI), and the input file is left untouched."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from offrl.cli import main
from offrl.core.errors import DatasetError
from offrl.data.d4rl import read_d4rl_hdf5, write_d4rl_hdf5
from offrl.data.minari_reader import read_minari
from tests.conftest import make_episodes

minari = pytest.importorskip("minari")
from minari.data_collector import EpisodeBuffer  # noqa: E402

D4RL_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations")


def _raw() -> dict[str, np.ndarray]:
    return make_episodes([4, 3], ["terminal", "timeout"], obs_dim=9, act_dim=1)


def _as_bytes(array: np.ndarray) -> np.ndarray:
    """Fixed-length byte strings that numpy could coerce back to floats (b'0.5' -> 0.5)."""
    return np.char.encode(array.astype(str))


def _write_d4rl(path: Path, key: str | None, kind: str) -> Path:
    raw = _raw()
    with h5py.File(path, "w") as handle:
        for name, value in raw.items():
            if name != key:
                handle.create_dataset(name, data=value[:0] if kind == "zero rows" else value)
        if key is not None:
            value = raw[key]
            if kind == "bytes":
                handle.create_dataset(key, data=_as_bytes(value))
            elif kind == "vlen str":
                handle.create_dataset(key, data=value.astype(str).astype(object), dtype=h5py.string_dtype())
            elif kind == "object":  # variable-length float arrays: numpy reads an object array
                ragged = h5py.vlen_dtype(np.float32)
                node = handle.create_dataset(key, (len(value),), dtype=ragged)
                for i, row in enumerate(value.reshape(len(value), -1)):
                    node[i] = row.astype(np.float32)
        handle["metadata/env_id"] = "InvertedDoublePendulum-v5"
    return path


D4RL_CASES = [(key, kind, f"key '{key}' holds") for key in D4RL_KEYS for kind in ("bytes", "vlen str", "object")]
D4RL_CASES.append((None, "zero rows", "key 'rewards' has 0 rows"))


@pytest.mark.parametrize("key,kind,message", D4RL_CASES, ids=[f"{k}-{v}" for k, v, _ in D4RL_CASES])
def test_d4rl_file_is_refused_by_dtype_before_any_conversion(tmp_path, key, kind, message):
    path = _write_d4rl(tmp_path / "bad.hdf5", key, kind)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(DatasetError) as err:
        read_d4rl_hdf5(path)
    text = str(err.value)
    assert str(path) in text and message in text and "\n" not in text
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest  # the input is untouched


def test_cli_refuses_a_byte_string_file_with_one_line_and_exit_2(tmp_path, capsys):
    path = _write_d4rl(tmp_path / "bad.hdf5", "rewards", "bytes")
    run = tmp_path / "run"
    code = main(["train", "dataset=hdf5", f"dataset.path={path}", f"hydra.run.dir={run}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "key 'rewards' holds dtype |S" in err
    assert not run.exists()  # the refused run leaves no directory behind


# ---------------------------------------------------------------------- Minari
@pytest.fixture
def minari_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    return tmp_path / "minari"


def _minari_dataset(dataset_id: str = "test/bad/data-v0") -> Path:
    rng = np.random.default_rng(0)
    buffers = []
    for length in (5, 4):
        buffers.append(EpisodeBuffer(
            observations=list(rng.normal(size=(length + 1, 9))), actions=list(rng.uniform(-1, 1, (length, 1))),
            rewards=list(np.ones(length)), terminations=[False] * length, truncations=[False] * (length - 1) + [True]))
    env = __import__("gymnasium").make("InvertedDoublePendulum-v5")
    minari.create_dataset_from_buffers(dataset_id, buffers, env=env, algorithm_name="test", author="t",
                                       author_email="t@localhost", code_permalink="x", description="x")
    return minari.storage.get_dataset_path(dataset_id) / "data"


def _replace_in_episode(data_dir: Path, key: str, value) -> None:
    with h5py.File(data_dir / "main_data.hdf5", "a") as handle:
        group = handle["episode_0"]
        del group[key]
        if isinstance(value, np.ndarray) and value.dtype.kind == "O":
            group.create_dataset(key, data=value, dtype=h5py.string_dtype())
        else:
            group.create_dataset(key, data=value)


def _minari_damage(data_dir: Path, kind: str) -> None:
    if kind.startswith("bytes:"):
        key = kind.split(":")[1]
        with h5py.File(data_dir / "main_data.hdf5", "r") as handle:
            value = handle["episode_0"][key][()]
        _replace_in_episode(data_dir, key, _as_bytes(value))
    elif kind.startswith("vlen str:"):
        key = kind.split(":")[1]
        with h5py.File(data_dir / "main_data.hdf5", "r") as handle:
            value = handle["episode_0"][key][()]
        _replace_in_episode(data_dir, key, value.astype(str).astype(object))
    elif kind == "truncated episode file":
        episode_file = data_dir / "main_data.hdf5"
        episode_file.write_bytes(episode_file.read_bytes()[: episode_file.stat().st_size // 2])
    elif kind == "corrupt metadata":
        (data_dir / "metadata.json").write_text('{"dataset_id": "test/bad/data-v0", "total_ep')
    elif kind == "missing episode group":
        with h5py.File(data_dir / "main_data.hdf5", "a") as handle:
            del handle["episode_1"]


MINARI_CASES = [
    *((f"bytes:{key}", f"key '{key}' holds dtype |S") for key in
      ("observations", "actions", "rewards", "terminations", "truncations")),
    *((f"vlen str:{key}", f"key '{key}' holds dtype object") for key in ("observations", "rewards")),
    ("truncated episode file", "is damaged or truncated"),
    ("missing episode group", "is damaged or truncated"),
    ("corrupt metadata", "metadata in"),
]


@pytest.mark.parametrize("kind,message", MINARI_CASES, ids=[k for k, _ in MINARI_CASES])
def test_minari_dataset_is_refused_at_load(minari_root, kind, message):
    data_dir = _minari_dataset()
    _minari_damage(data_dir, kind)
    with pytest.raises(DatasetError) as err:
        read_minari("test/bad/data-v0")
    text = str(err.value)
    assert text.startswith("minari:test/bad/data-v0") and message in text and "\n" not in text
    if kind == "corrupt metadata":
        assert "corrupt" in text and "no local Minari dataset" not in text


def test_minari_not_found_is_not_reported_as_corrupt(minari_root):
    _minari_dataset()
    with pytest.raises(DatasetError, match=r"no local Minari dataset under .*found \['test/bad/data-v0'\]") as err:
        read_minari("test/bad/other-v0")
    assert "download=True" not in str(err.value)


def test_every_reader_reports_what_it_loaded(tmp_path, minari_root):
    """The load summary: transitions, episodes, terminals, time-limit ends and the rows dropped."""
    raw = _raw()
    del raw["next_observations"]  # qlearning_dataset convention: timeout rows have no successor
    summary = read_d4rl_hdf5(write_d4rl_hdf5(tmp_path / "a.hdf5", raw)).summary()
    assert summary["rows_read"] == 7 and summary["transitions"] == 6 and summary["terminals"] == 1
    assert summary["dropped"] == {"timeout rows without a next observation": 1,
                                  "last row without a next observation": 0}
    summary = read_minari_summary()
    assert summary == {**summary, "rows_read": 9, "transitions": 9, "episodes": 2, "terminals": 0, "timeouts": 2}
    json.dumps(summary)  # goes into results.json as it is


def read_minari_summary() -> dict:
    _minari_dataset("test/good/data-v0")
    return read_minari("test/good/data-v0").summary()


def test_actions_outside_the_env_bounds_are_counted_and_refused_where_an_agent_cannot_learn_them(tmp_path, capsys):
    raw = make_episodes([30, 30], ["timeout", "timeout"], obs_dim=3, act_dim=1)  # Pendulum's shapes
    raw["actions"] = raw["actions"] * 2.0  # Pendulum's bounds are [-2, 2]
    raw["actions"][[4, 40]] = 50.0
    path = write_d4rl_hdf5(tmp_path / "wide.hdf5", raw, {"env_id": "Pendulum-v1"})
    before = path.read_bytes()
    args = ["train", "dataset=hdf5", f"dataset.path={path}", "trainer.steps=2", "trainer.eval_episodes=1",
            "agent.hidden_dims=[16,16]", "device=cpu", "threads=1"]
    assert main([*args, "agent=bc", f"hydra.run.dir={tmp_path / 'bc'}"]) == 0
    assert "2 rows with actions outside the env's bounds" in capsys.readouterr().out
    assert main([*args, "agent=expo", f"hydra.run.dir={tmp_path / 'expo'}"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "2 rows have actions outside the bounds of Pendulum-v1" in err
    assert "agent=expo" in err and "bc" in err and not (tmp_path / "expo").exists() and path.read_bytes() == before
