"""The default dataset: generated deterministically, with measured reference returns."""

import numpy as np

from offrl.data.d4rl import read_d4rl_hdf5
from offrl.data.recipes import RECIPES


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
