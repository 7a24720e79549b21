import gymnasium as gym
import numpy as np
import pytest

minari = pytest.importorskip("minari")
from minari.data_collector import EpisodeBuffer  # noqa: E402

from offrl.data.minari_reader import read_minari  # noqa: E402


@pytest.fixture
def minari_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    return tmp_path


def _buffers(specs, obs_dim=9, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for length, end in specs:
        obs = rng.normal(size=(length + 1, obs_dim))
        out.append(EpisodeBuffer(
            observations=list(obs), actions=list(rng.uniform(-1, 1, (length, 1)).astype(np.float32)),
            rewards=list(np.arange(length, dtype=np.float64)),
            terminations=[False] * (length - 1) + [end == "terminal"],
            truncations=[False] * (length - 1) + [end == "truncation"],
        ))
    return out


def test_minari_episodes_flatten_with_terminations_and_truncations_apart(minari_dir):
    buffers = _buffers([(5, "terminal"), (7, "truncation")])
    minari.create_dataset_from_buffers("test/idp/tiny-v0", buffers, env=gym.make("InvertedDoublePendulum-v5"),
                                       ref_min_score=1.0, ref_max_score=11.0, algorithm_name="test")
    data = read_minari("test/idp/tiny-v0")
    assert len(data) == 12
    assert data.terminals.tolist() == [0, 0, 0, 0, 1] + [0] * 7  # the truncation is not a terminal
    assert data.episode_bounds().tolist() == [[0, 5], [5, 12]]
    first = np.asarray(buffers[0].observations)
    np.testing.assert_allclose(data.observations[:5], first[:-1], rtol=1e-6)
    np.testing.assert_allclose(data.next_observations[:5], first[1:], rtol=1e-6)
    assert data.info.env_id == "InvertedDoublePendulum-v5"
    assert data.info.normalized_score(6.0) == pytest.approx(50.0)


def test_minari_without_reference_scores(minari_dir):
    minari.create_dataset_from_buffers("test/idp/norefs-v0", _buffers([(4, "truncation")]),
                                       env=gym.make("InvertedDoublePendulum-v5"), algorithm_name="test")
    data = read_minari("test/idp/norefs-v0")
    assert data.info.ref_min_score is None and data.info.normalized_score(1.0) is None
