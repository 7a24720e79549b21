import h5py
import numpy as np
import pytest

from offrl.core.errors import DatasetError
from offrl.data.d4rl import D4RL_REFERENCE_SCORES, read_d4rl_hdf5, write_d4rl_hdf5
from offrl.data.sources import DatasetConfig, load_dataset
from tests.conftest import make_episodes


def test_with_next_observations_keeps_every_row(tmp_path):
    raw = make_episodes([4, 3, 5], ["terminal", "timeout", "timeout"])
    path = write_d4rl_hdf5(tmp_path / "d.hdf5", raw)
    data = read_d4rl_hdf5(path)
    assert len(data) == 12
    np.testing.assert_array_equal(data.next_observations, raw["next_observations"])
    # a timeout is not a terminal
    assert data.terminals.tolist() == raw["terminals"].tolist()
    assert data.terminals.sum() == 1 and not data.terminals[6]
    assert data.episode_bounds().tolist() == [[0, 4], [4, 7], [7, 12]]


def test_without_next_observations_follows_qlearning_dataset(tmp_path):
    raw = make_episodes([4, 3, 5], ["terminal", "timeout", "timeout"])
    del raw["next_observations"]
    data = read_d4rl_hdf5(write_d4rl_hdf5(tmp_path / "d.hdf5", raw))
    # the timeout rows (index 6 and 11, the last) are dropped
    assert len(data) == 10
    # successors come from the next row and never cross an episode boundary
    same_episode = ~data.terminals
    np.testing.assert_array_equal(data.next_observations[same_episode], data.observations[same_episode] + 1)
    assert data.terminals.tolist() == [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
    assert data.episode_bounds().tolist() == [[0, 4], [4, 6], [6, 10]]


def test_rewards_column_vector_and_metadata(tmp_path):
    raw = make_episodes([3], ["terminal"])
    raw["rewards"] = raw["rewards"][:, None]
    path = write_d4rl_hdf5(tmp_path / "d.hdf5", raw, {"env_id": "Hopper-v5", "ref_min_score": -1.0,
                                                     "ref_max_score": 9.0})
    data = read_d4rl_hdf5(path)
    assert data.rewards.shape == (3,)
    assert data.info.env_id == "Hopper-v5"
    assert data.info.normalized_score(4.0) == pytest.approx(50.0)


def test_original_d4rl_file_names_get_d4rl_reference_scores(tmp_path):
    raw = make_episodes([3], ["timeout"])
    data = read_d4rl_hdf5(write_d4rl_hdf5(tmp_path / "hopper-medium-v2.hdf5", raw))
    assert (data.info.ref_min_score, data.info.ref_max_score) == D4RL_REFERENCE_SCORES["hopper"]
    assert data.info.env_id == "Hopper-v5"


def test_v0_file_without_timeouts(tmp_path):
    raw = make_episodes([3, 2], ["terminal", "terminal"])
    del raw["timeouts"], raw["next_observations"]
    data = read_d4rl_hdf5(write_d4rl_hdf5(tmp_path / "d.hdf5", raw))
    assert len(data) == 5 and data.terminals.sum() == 2


def test_float64_files_are_read_as_float32(tmp_path):
    raw = make_episodes([3], ["timeout"])
    raw = {k: (v.astype(np.float64) if v.dtype == np.float32 else v) for k, v in raw.items()}
    data = read_d4rl_hdf5(write_d4rl_hdf5(tmp_path / "d.hdf5", raw))
    assert data.observations.dtype == np.float32 and data.rewards.dtype == np.float32


def test_reward_normalization_return_range(tmp_path):
    raw = make_episodes([4, 4], ["timeout", "timeout"])
    raw["rewards"][:] = np.repeat([1.0, 3.0], 4)  # episode returns 4 and 12
    cfg = DatasetConfig(name="d", source="hdf5", path=str(write_d4rl_hdf5(tmp_path / "d.hdf5", raw)),
                        reward_normalization="return_range", reward_shift=-1.0)
    data = load_dataset(cfg)
    np.testing.assert_allclose(data.rewards, np.repeat([1000 / 8 - 1, 3000 / 8 - 1], 4), rtol=1e-6)


def test_infos_and_metadata_groups_are_tolerated(tmp_path):
    raw = make_episodes([3], ["timeout"])
    path = write_d4rl_hdf5(tmp_path / "d.hdf5", raw, {"algorithm": "SAC"}, {"qpos": np.zeros((3, 2))})
    with h5py.File(path) as handle:
        assert "infos/qpos" in handle
    assert read_d4rl_hdf5(path).info.extra["algorithm"] == "SAC"


@pytest.mark.parametrize("key,value", [("terminals", 0.5), ("terminals", -1.0), ("timeouts", 2.0)])
def test_flags_other_than_0_and_1_are_refused(tmp_path, key, value):
    raw = make_episodes([5, 4], ["terminal", "timeout"])
    raw[key] = raw[key].astype(np.float32)
    raw[key][2] = value
    path = tmp_path / "flags.hdf5"
    with h5py.File(path, "w") as f:
        for name, array in raw.items():
            f[name] = array
    with pytest.raises(Exception, match=f"key '{key}' holds 1 value\\(s\\) other than 0 and 1 \\(e.g. {value:g}, "
                                        "first at row 2\\); expected episode-end flags"):
        read_d4rl_hdf5(path)
    raw[key][2] = 1.0  # float flags of 0 and 1 are fine
    with h5py.File(path, "w") as f:
        for name, array in raw.items():
            f[name] = array
    assert len(read_d4rl_hdf5(path)) == 9


def test_v0_file_without_timeouts_is_split_at_the_env_episode_limit(tmp_path):
    """D4RL v0 files have no timeouts: d4rl's loader cuts episodes at the env's max_episode_steps, and so does
    offrl, so no transition joins the last step of one episode to the first of the next."""
    raw = make_episodes([1000, 1000, 400], ["timeout", "timeout", "terminal"], obs_dim=11, act_dim=3)
    del raw["timeouts"], raw["next_observations"]
    path = write_d4rl_hdf5(tmp_path / "hopper-v0.hdf5", raw)
    alone = read_d4rl_hdf5(path)  # no env known: episodes end at terminals only, and the loaded line says so
    assert alone.summary()["episodes"] == 1 and "episodes end at terminals only" in alone.describe()
    data = load_dataset(DatasetConfig(name="hdf5", source="hdf5", path=str(path), env_id="Hopper-v5"))
    assert data.summary()["episodes"] == 3 and data.summary()["timeouts"] == 2
    assert "split at the env's limit of 1000 steps" in data.describe()
    assert len(data) == 2400 - 2  # the two time-limit rows have no next observation (d4rl drops them too)
    # every next observation is its own episode's next step (observations are 1000 * episode + step)
    episode_of = lambda x: np.floor(x[:, 0] / 1000.0)  # noqa: E731
    assert np.array_equal(episode_of(data.observations), episode_of(data.next_observations))


def test_values_beyond_float32_are_named_not_read_as_inf(tmp_path):
    raw = make_episodes([5, 4], ["terminal", "timeout"])
    raw["rewards"] = raw["rewards"].astype(np.float64)
    raw["rewards"][3] = 1e300
    path = tmp_path / "huge.hdf5"
    with h5py.File(path, "w") as f:
        for name, array in raw.items():
            f[name] = array
    with pytest.raises(DatasetError, match=r"key 'rewards' holds 1 value\(s\) outside float32's range \(e.g. 1e\+300 "
                                           r"at index \(3,\)\); expected magnitudes below 3.4e\+38"):
        read_d4rl_hdf5(path)
