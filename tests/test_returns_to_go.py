"""Returns-to-go, a column of the data layer: each row's discounted return within its episode, stopping at terminals,
truncated at time-limit ends; held by a store for the agents that read it, and by an online replay through
EpisodeWriter, which adds each episode whole, with its returns, when it ends."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from offrl.core.errors import ConfigError, DatasetError
from offrl.core.spec import ObservationSpec
from offrl.data.arrays import DatasetInfo, OfflineData, returns_to_go
from offrl.data.batches import Mixture, StoreSampler
from offrl.data.goals import GoalRelabel, GoalRelabelConfig
from offrl.data.store import EpisodeWriter, ObsNormalizer, TransitionStore
from tests.conftest import make_episodes


def _data(lengths=(3, 2, 2), ends=("terminal", "timeout", "timeout"), rewards=None) -> OfflineData:
    raw = make_episodes(list(lengths), list(ends))
    if rewards is not None:
        raw["rewards"] = np.asarray(rewards, np.float32)
    return OfflineData(raw["observations"], raw["actions"], raw["rewards"], raw["next_observations"],
                       raw["terminals"], raw["terminals"] | raw["timeouts"], DatasetInfo("t", "test", "test"))


def test_returns_stop_at_terminals_and_time_limit_ends():
    """Episodes [1, 2, 4] (terminal), [8, 16] (time limit), [32, 64] (the data's last row, a time limit): each row sums
    its episode's discounted rewards from there on, and nothing past the episode's end."""
    data = _data(rewards=[1, 2, 4, 8, 16, 32, 64])
    got = data.returns_to_go(0.5)
    expected = [1 + 0.5 * 2 + 0.25 * 4, 2 + 0.5 * 4, 4, 8 + 0.5 * 16, 16, 32 + 0.5 * 64, 64]
    np.testing.assert_allclose(got, expected)
    assert got.dtype == np.float32


def test_a_terminal_inside_an_episode_stops_the_return():
    """A success terminal of single-task data (the episode goes on): the TD target stops there, so does G."""
    rewards = np.array([1.0, 1.0, 1.0, 1.0])
    terminals = np.array([False, True, False, False])
    ends = np.array([False, False, False, True])
    np.testing.assert_allclose(returns_to_go(rewards, terminals, ends, 0.9), [1.9, 1.0, 1.9, 1.0])


def test_data_without_episode_ends_is_refused():
    one_episode = _data(lengths=(7,), ends=("timeout",))
    one_episode.episode_ends[:] = False
    with pytest.raises(DatasetError, match="no row before the last ends an episode"):
        one_episode.returns_to_go(0.99)
    unsplit = _data()  # a file without timeouts whose env has no time limit: the reader could not split it
    unsplit.info.extra["episode_limit"] = None
    with pytest.raises(DatasetError, match="no 'timeouts' key"):
        unsplit.returns_to_go(0.99)


def test_a_store_holds_returns_only_when_asked_and_batches_carry_them():
    data = _data(rewards=[1, 2, 4, 8, 16, 32, 64])
    assert TransitionStore.from_data(data).sample(4).returns is None
    store = TransitionStore.from_data(data, seed=0, columns=("returns",), discount=0.5)
    assert store.returns_discount == 0.5
    by_obs = dict(zip(data.observations[:, 0].tolist(), data.returns_to_go(0.5).tolist()))
    batch = Mixture([(StoreSampler(store), 0.5), (StoreSampler(store), 0.5)]).sample(64)
    for obs, g in zip(batch.obs[:, 0].tolist(), batch.returns.tolist()):
        assert g == pytest.approx(by_obs[obs])
    with pytest.raises(ValueError, match="discount"):
        TransitionStore.from_data(data, columns=("returns",))


def test_goal_relabelling_is_refused_for_a_store_with_returns():
    """Relabelled goals bring rewards of their own; the store's returns are those of the recorded rewards."""
    store = TransitionStore.from_data(_data(), columns=("returns",), discount=0.9)
    spec = ObservationSpec.from_shapes({"achieved_goal": (1,), "desired_goal": (1,), "observation": (1,)})
    with pytest.raises(ConfigError, match="dataset.relabel.enabled=false"):
        GoalRelabel(store, spec, ObsNormalizer(3), GoalRelabelConfig())
    GoalRelabel(TransitionStore.from_data(_data()), spec, ObsNormalizer(3), GoalRelabelConfig())  # without: fine


def _step(rows: dict[int, tuple[float, bool, bool]]):
    """One vector-env step of two sub-envs: {sub-env: (reward, terminated, ended)}; the observation is the reward."""
    envs = np.array(sorted(rows))
    reward = np.array([rows[k][0] for k in envs], np.float32)
    return (envs, torch.tensor(reward)[:, None], np.zeros((len(envs), 1), np.float32), reward,
            torch.tensor(reward)[:, None], np.array([rows[k][1] for k in envs]), np.array([rows[k][2] for k in envs]))


def test_episode_writer_adds_each_episode_whole_with_its_returns_when_it_ends():
    replay = TransitionStore(1, 1, 100)
    writer = EpisodeWriter(replay, num_envs=2, returns_discount=0.5)
    writer.add(*_step({0: (1.0, False, False), 1: (10.0, False, False)}))
    writer.add(*_step({0: (2.0, True, True), 1: (20.0, False, False)}))
    assert len(replay) == 2  # sub-env 0's terminated episode; sub-env 1's is still running
    torch.testing.assert_close(replay.rows(slice(0, 2)).returns, torch.tensor([1.0 + 0.5 * 2.0, 2.0]))
    resumed = EpisodeWriter(replay, num_envs=2, returns_discount=0.5)
    resumed.load_state_dict(writer.state_dict())  # the running episode's rows travel with the checkpoint
    resumed.add(*_step({1: (40.0, False, True)}))  # a time limit: the truncated episode's return
    assert len(replay) == 5
    torch.testing.assert_close(replay.rows(slice(2, 5)).obs[:, 0], torch.tensor([10.0, 20.0, 40.0]))
    torch.testing.assert_close(replay.rows(slice(2, 5)).returns, torch.tensor([10.0 + 10.0 + 10.0, 20.0 + 20.0, 40.0]))
    restored = TransitionStore(1, 1, 100)
    restored.load_state_dict(replay.state_dict())
    torch.testing.assert_close(restored.rows(slice(0, 5)).returns, replay.rows(slice(0, 5)).returns)


def test_episode_writer_without_returns_writes_each_transition_at_once():
    replay = TransitionStore(1, 1, 100)
    writer = EpisodeWriter(replay, num_envs=2)
    writer.add(*_step({0: (1.0, False, False), 1: (10.0, False, False)}))
    assert len(replay) == 2 and replay.sample(4).returns is None
    assert writer.state_dict() == {"pending": [None, None]}
