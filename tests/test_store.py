import numpy as np
import pytest
import torch

from offrl.core.errors import ConfigError
from offrl.data.arrays import DatasetInfo, OfflineData
from offrl.data.batches import Mixture, StoreSampler
from offrl.data.store import ObsNormalizer, TransitionStore, combine
from tests.conftest import make_episodes


def _data(lengths=(4, 3, 5), ends=("terminal", "timeout", "timeout")) -> OfflineData:
    raw = make_episodes(list(lengths), list(ends))
    return OfflineData(raw["observations"], raw["actions"], raw["rewards"], raw["next_observations"],
                       raw["terminals"], raw["terminals"] | raw["timeouts"], DatasetInfo("t", "test", "test"))


def test_sample_returns_consistent_rows_on_the_store_device():
    store = TransitionStore.from_data(_data(), "cpu", seed=0)
    batch = store.sample(4096)
    assert batch.obs.shape == (4096, 3) and batch.actions.shape == (4096, 2) and batch.rewards.shape == (4096,)
    # next_obs is obs + 1 in make_episodes: the gather keeps rows aligned
    torch.testing.assert_close(batch.next_obs, batch.obs + 1)
    # uniform: every row is drawn
    assert torch.unique(batch.obs[:, 0]).numel() == len(store)
    assert batch.dones.sum() > 0 and set(batch.dones.unique().tolist()) <= {0.0, 1.0}


def test_sampling_is_reproducible_from_the_seed():
    a = TransitionStore.from_data(_data(), seed=3).sample(64)
    b = TransitionStore.from_data(_data(), seed=3).sample(64)
    torch.testing.assert_close(a.obs, b.obs)


def test_episode_slices():
    store = TransitionStore.from_data(_data())
    assert store.episode_bounds().tolist() == [[0, 4], [4, 7], [7, 12]]
    episode = store.episode(1)
    assert episode.obs[:, 0].tolist() == [1000.0, 1001.0, 1002.0]


def test_next_actions_are_the_next_rows_actions_within_each_episode():
    """OfflineData.next_actions: row i + 1's action inside an episode; the row's own action at an episode's last row
    (a termination, a time limit, and the data's end even without an end flag)."""
    data = _data(lengths=(4, 3, 5), ends=("terminal", "timeout", "timeout"))
    data.episode_ends[-1] = False  # the data ends mid-episode: its last row still ends an episode
    expected = data.actions.copy()
    for start, stop in [(0, 4), (4, 7), (7, 12)]:
        expected[start:stop - 1] = data.actions[start + 1:stop]
    np.testing.assert_array_equal(data.next_actions(), expected)


def test_a_store_holds_the_next_actions_column_only_when_asked_and_batches_carry_it():
    data = _data()
    assert TransitionStore.from_data(data).sample(8).next_actions is None  # no agent reads it
    store = TransitionStore.from_data(data, seed=0, columns=("next_actions",))
    batch = store.sample(512)
    actions_at = {float(o): a for o, a in zip(data.observations[:, 0], data.actions)}  # obs t of episode e: 1000e + t
    ends = store.episode_ends.clone()
    ends[-1] = True
    rows = torch.nonzero(batch.obs[:, :1] == store.obs[None, :, 0])[:, 1]  # the rows drawn (their obs are distinct)
    for next_obs, next_action, action, end in zip(batch.next_obs[:, 0], batch.next_actions, batch.actions, ends[rows]):
        # inside an episode: the action stored with the next observation; at an episode's end: the row's own action
        want = action if end else torch.from_numpy(actions_at[float(next_obs)])
        torch.testing.assert_close(next_action, want, msg=f"next obs {float(next_obs)}")
    assert set(ends[rows].tolist()) == {False, True}
    torch.testing.assert_close(store.episode(1).next_actions, torch.from_numpy(data.next_actions()[4:7]))
    # the column travels with its rows through a mixture's interleaving and a seed stack, and is dropped where a part
    # lacks it
    by_obs = {float(o): torch.from_numpy(a) for o, a in zip(data.observations[:, 0], data.next_actions())}
    other = TransitionStore.from_data(data, seed=1, columns=("next_actions",))
    mixed = Mixture([(StoreSampler(store), 0.5), (StoreSampler(other), 0.5)]).sample(64)
    for obs, next_action in zip(mixed.obs[:, 0], mixed.next_actions):
        torch.testing.assert_close(next_action, by_obs[float(obs)])
    assert combine([store.sample(4), other.sample(4)], torch.stack).next_actions.shape == (2, 4, 2)
    assert combine([store.sample(4), TransitionStore.from_data(data).sample(4)], torch.cat).next_actions is None


def test_ring_buffer_overwrites_the_oldest_rows():
    store = TransitionStore(obs_dim=1, act_dim=1, capacity=5)
    for start in (0, 3, 6):
        obs = np.arange(start, start + 3, dtype=np.float32)[:, None]
        store.add(obs, obs, obs[:, 0], obs + 1, np.zeros(3), np.zeros(3))
    assert len(store) == 5 and store.position == 4 and store.wrapped
    assert sorted(store.obs[:, 0].tolist()) == [4.0, 5.0, 6.0, 7.0, 8.0]
    with pytest.raises(RuntimeError):
        store.episode_bounds()


def test_state_dict_round_trip_restores_rows_and_sampler():
    store = TransitionStore(obs_dim=1, act_dim=1, capacity=10, seed=1)
    obs = np.arange(7, dtype=np.float32)[:, None]
    store.add(obs, obs, obs[:, 0], obs, np.zeros(7), np.zeros(7))
    state = store.state_dict()
    expected = store.sample(16)
    restored = TransitionStore(obs_dim=1, act_dim=1, capacity=10, seed=99)
    restored.load_state_dict(state)
    assert len(restored) == 7 and restored.position == 7
    torch.testing.assert_close(restored.sample(16).obs, expected.obs)


def _marked_store(mark: float, rows: int = 10) -> TransitionStore:
    store = TransitionStore(obs_dim=1, act_dim=1, capacity=rows)
    values, zeros = np.full((rows, 1), mark, np.float32), np.zeros((rows, 1), np.float32)
    store.add(values, values, values[:, 0], values, zeros[:, 0], zeros[:, 0])
    return store


@pytest.mark.parametrize("share,batch_size,minibatches", [(0.25, 256, 4), (0.5, 256, 20), (0.3, 100, 10)])
def test_mixture_keeps_the_share_in_every_minibatch(share, batch_size, minibatches):
    """RLPD/EXPO split one mixed batch into UTD minibatches: each must hold both sources in the share."""
    mixture = Mixture([(StoreSampler(_marked_store(1.0)), share), (StoreSampler(_marked_store(0.0)), 1 - share)])
    batch = mixture.sample(batch_size)
    assert batch.obs.shape == (batch_size, 1) and batch.obs.sum().item() == round(share * batch_size)
    for chunk in batch.obs[:, 0].tensor_split(minibatches):
        assert abs(chunk.mean().item() - share) <= 1.0 / len(chunk) + 1e-6, chunk
    assert torch.equal(batch.obs, batch.rewards[:, None])  # rows stay whole through the interleaving


def test_mixture_gives_an_empty_source_share_to_the_others():
    empty = TransitionStore(obs_dim=1, act_dim=1, capacity=10)
    mixture = Mixture([(StoreSampler(_marked_store(1.0)), 0.5), (StoreSampler(empty), 0.5)])
    assert mixture.counts(64) == [64, 0] and mixture.sample(64).obs.sum().item() == 64
    with pytest.raises(ConfigError):
        Mixture([(StoreSampler(empty), -1.0)])


def test_normalizer_standardises_states_and_round_trips():
    obs = np.random.default_rng(0).normal(5.0, 3.0, size=(10_000, 4)).astype(np.float32)
    normalizer = ObsNormalizer.fit(obs)
    out = normalizer(torch.from_numpy(obs))
    torch.testing.assert_close(out.mean(0), torch.zeros(4), atol=1e-3, rtol=0)
    torch.testing.assert_close(out.std(0), torch.ones(4), atol=1e-3, rtol=0)
    copy = ObsNormalizer(4)
    copy.load_state_dict(normalizer.state_dict())
    torch.testing.assert_close(copy(torch.from_numpy(obs)), out)


def test_store_normalizes_obs_and_next_obs_in_place():
    data = _data()
    normalizer = ObsNormalizer.fit(data.observations)
    store = TransitionStore.from_data(data)
    store.normalize_obs(normalizer)
    torch.testing.assert_close(store.obs, normalizer(torch.from_numpy(data.observations)))
    torch.testing.assert_close(store.next_obs, normalizer(torch.from_numpy(data.next_observations)))
