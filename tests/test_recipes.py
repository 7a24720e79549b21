"""The default dataset: generated deterministically, with measured reference returns."""

import numpy as np
import pytest

from offrl.data.cache import cache_dir
from offrl.data.d4rl import read_d4rl_hdf5
from offrl.generation.recipes import RECIPES


def test_recipe_is_deterministic_and_carries_reference_returns(tmp_path):
    recipe = RECIPES["idp-mixed"]
    a = read_d4rl_hdf5(recipe.build(tmp_path / "a.hdf5", size=2000))
    b = read_d4rl_hdf5(recipe.build(tmp_path / "b.hdf5", size=2000))
    assert len(a) == 2000
    for key in ("observations", "actions", "rewards", "next_observations", "terminals", "episode_ends"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    info = a.info
    assert info.env_id == "InvertedDoublePendulum-v5"
    # uniform random actions topple the pendulum within a few steps; the noiseless LQR balances 1000
    assert 20 < info.ref_min_score < 200 and info.ref_max_score > 9000
    assert info.extra["recipe"]["seed"] == 0 and info.extra["ref_min_episodes"] == 100
    # mixed quality: some episodes fall (terminal), the data ends in a cut (timeout, not terminal)
    assert a.terminals.sum() > 0 and not a.terminals[-1] and a.episode_ends[-1]
    returns = a.episode_returns()
    assert returns.min() < 0.2 * info.ref_max_score


def test_rollout_rows_are_consistent(tmp_path):
    data = read_d4rl_hdf5(RECIPES["idp-mixed"].build(tmp_path / "c.hdf5", size=1500))
    within = ~data.episode_ends[:-1]
    np.testing.assert_array_equal(data.next_observations[:-1][within], data.observations[1:][within])
    assert np.abs(data.actions).max() <= 1.0


def test_a_second_builder_waits_for_the_first_and_reads_its_file(tmp_path):
    """Two jobs of a sweep finding a dataset missing: the one that does not hold the build lock waits, then
    reads the file the other built, instead of building it again into the same file."""
    import os
    import subprocess
    import sys
    import time

    from offrl.generation.recipes import build_lock, cached_path

    env = {**os.environ, "OFFRL_DATA_DIR": str(tmp_path)}
    os.environ["OFFRL_DATA_DIR"], before = str(tmp_path), os.environ["OFFRL_DATA_DIR"]
    try:
        path = cached_path("idp-mixed", 300)
        with build_lock(path):
            second = subprocess.Popen(
                [sys.executable, "-c", "from offrl.generation.recipes import ensure_recipe_dataset as e; "
                                       "print(e('idp-mixed', 300))"],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            deadline = time.time() + 60
            while time.time() < deadline and not any((tmp_path / ".locks").iterdir()):
                time.sleep(0.1)
            time.sleep(3)  # the second process reaches the lock (and waits) while this one builds
            built = RECIPES["idp-mixed"].build(path, 300)  # what ensure_recipe_dataset does under the lock
            stamp = built.stat().st_mtime_ns
        out, _ = second.communicate(timeout=120)
    finally:
        os.environ["OFFRL_DATA_DIR"] = before
    assert second.returncode == 0, out
    assert "waiting for another process that is building idp-mixed-300.hdf5" in out and "building dataset" not in out
    assert out.strip().endswith(str(built)) and built.stat().st_mtime_ns == stamp  # read, not rebuilt
    assert not list(tmp_path.glob("*.tmp"))


def test_a_damaged_dataset_file_is_one_line(tmp_path):
    from offrl.core.errors import DatasetError
    from offrl.data.d4rl import write_d4rl_hdf5

    rng = np.random.default_rng(0)
    n = 20_000
    path = write_d4rl_hdf5(tmp_path / "d.hdf5", {
        "observations": rng.normal(size=(n, 8)).astype(np.float32), "actions": rng.normal(size=(n, 2)).astype(
            np.float32), "rewards": rng.normal(size=n).astype(np.float32), "terminals": np.zeros(n, bool)})
    intact = path.read_bytes()
    data = bytearray(intact)
    middle = len(data) // 3
    data[middle:middle + 4096] = bytes(4096)  # zeros over compressed chunks
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"d\.hdf5: the file is damaged, its arrays cannot be read"):
        read_d4rl_hdf5(path)
    # the last fifth zeroed (h5py then fails while looking up keys), and a copy cut short: one line each
    for damaged in (intact[: len(intact) * 4 // 5] + bytes(len(intact) - len(intact) * 4 // 5),
                    intact[: len(intact) // 2]):
        path.write_bytes(damaged)
        with pytest.raises(DatasetError, match=r"d\.hdf5: (the file is damaged|not a readable hdf5 file)") as caught:
            read_d4rl_hdf5(path)
        message = str(caught.value)
        assert "\n" not in message and ("replace it with an intact copy" in message or "not a readable" in message)
    # a file offrl built, in the cache: the message names the command that rebuilds it
    cached = cache_dir() / "hopper-medium-5000.hdf5"
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(intact[: len(intact) * 4 // 5] + bytes(len(intact) - len(intact) * 4 // 5))
    with pytest.raises(DatasetError, match="rebuild it with: offrl datasets build hopper-medium --size 5000 --force"):
        read_d4rl_hdf5(cached)
    cached.unlink()
