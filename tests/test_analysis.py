import json

import numpy as np
import pytest

from offrl.cli.datasets import analyze_command as main
from offrl.core.errors import DatasetError
from offrl.data.d4rl import read_d4rl_hdf5, write_d4rl_hdf5
from offrl.data.sources import resolve_dataset
from offrl.tools import analysis
from offrl.tools.analysis import analyze, count_distinct_rows, default_reference, discretize
from tests.conftest import make_episodes


def write(tmp_path, name, arrays, metadata=None):
    return write_d4rl_hdf5(tmp_path / f"{name}.hdf5", arrays, metadata)


def uniform_episodes(n_episodes, length, low, high, seed):
    """Episodes whose 3-dim states and 2-dim actions are uniform in [low, high]."""
    raw = make_episodes([length] * n_episodes, ["timeout"] * n_episodes, seed=seed)
    rng = np.random.default_rng(seed)
    n = n_episodes * length
    raw["observations"] = rng.uniform(low, high, (n, 3)).astype(np.float32)
    raw["next_observations"] = rng.uniform(low, high, (n, 3)).astype(np.float32)
    raw["actions"] = rng.uniform(low, high, (n, 2)).astype(np.float32)
    return raw


def test_one_transition_repeated_has_one_pair_and_n_minus_1_duplicates(tmp_path):
    n = 50
    raw = {"observations": np.full((n, 3), 0.5, np.float32), "next_observations": np.ones((n, 3), np.float32),
           "actions": np.full((n, 2), 0.1, np.float32), "rewards": np.ones(n, np.float32),
           "terminals": np.zeros(n, bool), "timeouts": np.zeros(n, bool)}
    data = read_d4rl_hdf5(write(tmp_path, "same", raw))
    result = analyze(data)
    assert result["saco"]["unique"] == 1 and result["saco"]["value"] == 1.0
    assert result["duplicates"]["count"] == n - 1
    diverse = read_d4rl_hdf5(write(tmp_path, "diverse", uniform_episodes(5, 10, 0.0, 1.0, seed=1)))
    against_diverse = analyze(data, diverse)
    assert against_diverse["saco"]["value"] == pytest.approx(1 / against_diverse["saco"]["reference_unique"])
    assert against_diverse["saco"]["reference"] == "diverse"


def test_tq_is_one_at_the_expert_return_and_zero_at_the_random_return(tmp_path):
    refs = {"env_id": "InvertedDoublePendulum-v5", "ref_min_score": 10.0, "ref_max_score": 90.0}
    for target, expected in ((90.0, 1.0), (10.0, 0.0)):
        raw = make_episodes([4, 8, 5], ["terminal", "timeout", "timeout"], obs_dim=9, act_dim=1)
        raw["rewards"] = np.concatenate([np.full(length, target / length, np.float32) for length in (4, 8, 5)])
        data = read_d4rl_hdf5(write(tmp_path, f"tq{target}", raw, refs))
        result = analyze(data)
        assert result["tq"]["value"] == pytest.approx(expected, abs=1e-5)
        assert result["tq"]["mean_return"] == pytest.approx(target, rel=1e-5)
    no_refs = read_d4rl_hdf5(write(tmp_path, "norefs", make_episodes([3], ["timeout"])))
    assert analyze(no_refs)["tq"]["value"] is None


def test_saco_relative_to_itself_is_one_and_grows_with_diversity(tmp_path):
    reference = read_d4rl_hdf5(write(tmp_path, "reference", uniform_episodes(40, 25, -1.0, 1.0, seed=2)))
    narrow = read_d4rl_hdf5(write(tmp_path, "narrow", uniform_episodes(40, 25, -0.1, 0.1, seed=3)))
    diverse = read_d4rl_hdf5(write(tmp_path, "diverse", uniform_episodes(40, 25, -1.0, 1.0, seed=4)))
    itself = analyze(reference)
    assert itself["saco"]["value"] == 1.0 and itself["saco"]["log_value"] == 1.0
    assert itself["saco"]["reference"] == "reference"
    narrow_saco = analyze(narrow, reference)["saco"]
    diverse_saco = analyze(diverse, reference)["saco"]
    assert narrow_saco["value"] < diverse_saco["value"]
    assert narrow_saco["log_value"] < diverse_saco["log_value"]
    assert analyze(reference, subset=100)["saco"]["binned"] == 100


def test_values_outside_the_reference_range_fall_in_the_end_bins():
    low, high = np.zeros(2), np.ones(2)
    x = np.array([[-5.0, 0.1], [0.5, 1.0], [7.0, 2.0]], np.float32)
    codes = discretize([x], low, high, bins=5)
    assert codes.tolist() == [[0, 1], [3, 5], [5, 5]]


def test_counts_saturation_and_statistics_of_a_hand_built_file(tmp_path):
    raw = make_episodes([10, 5, 7], ["terminal", "timeout", "timeout"], act_dim=2)
    raw["actions"] = np.zeros((22, 2), np.float32)
    raw["actions"][0, 0], raw["actions"][1, 0] = 1.0, -0.995  # saturated
    raw["actions"][2, 1], raw["actions"][3, 1] = 0.98, 0.99  # not saturated, saturated
    raw["successes"] = np.isin(np.arange(22), [12, 13])  # a task solved inside the second episode
    data = read_d4rl_hdf5(write(tmp_path, "hand", raw))
    result = analyze(data)
    assert result["transitions"] == 22
    assert result["episodes"]["count"] == 3
    assert result["episode_ends"] == {"count": 3, "terminals": 1, "timeouts": 2, "success_terminals": 2}
    assert result["episodes"]["length"] == {"min": 5.0, "mean": pytest.approx(22 / 3), "max": 10.0}
    returns = [raw["rewards"][a:b].sum(dtype=np.float64) for a, b in ((0, 10), (10, 15), (15, 22))]
    assert result["episodes"]["return"]["max"] == pytest.approx(max(returns), rel=1e-6)
    assert result["episodes"]["return"]["std"] == pytest.approx(np.std(returns), rel=1e-5)
    assert result["rewards"]["min"] == pytest.approx(float(raw["rewards"].min()))
    assert result["actions"]["saturated_fraction"] == pytest.approx(3 / 44)
    assert result["actions"]["saturated_fraction_per_dim"] == pytest.approx([2 / 22, 1 / 22])
    assert result["coverage"]["actions"]["max"] == pytest.approx([1.0, 0.99])
    assert result["coverage"]["observations"]["min"] == [0.0] * 3
    assert result["duplicates"]["count"] == 0 and result["non_finite"]["count"] == 0
    json.dumps(result)  # machine-readable as it is


def test_distinct_rows_are_exact_even_when_hashes_collide(monkeypatch):
    rows = np.random.default_rng(0).integers(0, 3, (500, 4)).astype(np.uint8)
    expected = len(np.unique(rows, axis=0))
    assert count_distinct_rows([rows]) == expected
    monkeypatch.setattr(analysis, "HASH_MULTIPLIER", np.uint64(0))  # every row hashes to 0
    assert count_distinct_rows([rows]) == expected
    assert count_distinct_rows([np.array([0.0, -0.0, 1.0], np.float32)]) == 2


def test_main_writes_the_report_for_two_files(tmp_path, capsys):
    refs = {"ref_min_score": -20.0, "ref_max_score": 20.0}
    first = write(tmp_path, "first", uniform_episodes(8, 30, -1.0, 1.0, seed=5), refs)
    second = write(tmp_path, "second", uniform_episodes(8, 30, -0.2, 0.2, seed=6), refs)
    out = tmp_path / "report"
    assert main([str(first), str(second), "--out", str(out), "--subset", "all"]) == 0
    printed = capsys.readouterr().out
    assert "TQ" in printed and "SACo" in printed and "first" in printed and str(out / "report.md") in printed
    assert "reference (default): first" in printed
    numbers = json.loads((out / "analysis.json").read_text())["datasets"]
    assert [d["name"] for d in numbers] == ["first", "second"]
    assert numbers[0]["saco"]["value"] == 1.0 and numbers[1]["saco"]["reference"] == "first"
    assert numbers[1]["saco"]["subset"] is None
    pngs = ["tq-vs-saco.png"] + [f"{name}-{kind}.png" for name in ("first", "second")
                                 for kind in ("returns", "lengths", "actions")]
    report = (out / "report.md").read_text()
    for png in pngs:
        assert (out / png).stat().st_size > 0 and f"]({png})" in report
    assert "| first | 240 | 8 |" in report


def test_main_reports_user_errors(tmp_path):
    missing = tmp_path / "missing.hdf5"
    with pytest.raises(DatasetError, match="missing.hdf5"):
        main([str(missing)])
    with pytest.raises(DatasetError, match="no-such-dataset"):
        main(["no-such-dataset"])
    assert main([]) == 2
    assert main(["idp-mixed", "--bins", "0"]) == 2
    assert main(["idp-mixed", "--subset", "many"]) == 2
    assert main(["--help"]) == 0


def test_reference_dims_must_match(tmp_path):
    small = read_d4rl_hdf5(write(tmp_path, "small", make_episodes([3], ["timeout"], obs_dim=2)))
    large = read_d4rl_hdf5(write(tmp_path, "large", make_episodes([3], ["timeout"], obs_dim=4)))
    with pytest.raises(DatasetError, match="large"):
        analyze(small, large)


def test_resolve_and_default_reference(monkeypatch, tmp_path):
    hdf5, minari = resolve_dataset("runs/d.hdf5"), resolve_dataset("minari:offrl/hopper/medium-v0")
    assert (hdf5.source, hdf5.path, resolve_dataset("x.h5").name) == ("hdf5", "runs/d.hdf5", "x")
    assert (minari.source, minari.id) == ("minari", "offrl/hopper/medium-v0")
    assert (resolve_dataset("idp-mixed").source, resolve_dataset("idp-mixed").name) == ("recipe", "idp-mixed")
    assert default_reference(["a.hdf5", "idp-mixed"]) == "a.hdf5"
    monkeypatch.setattr("offrl.tools.analysis.dataset_names", lambda: ["idp-mixed"])  # no hopper policies
    assert default_reference(["hopper-medium", "hopper-expert"]) == "hopper-medium"
    monkeypatch.setattr("offrl.tools.analysis.dataset_names", lambda: ["hopper-medium", "hopper-medium-replay"])
    # medium-replay is the default reference when given or already built (building it re-runs SAC training)
    assert default_reference(["hopper-medium", "hopper-expert"]) == "hopper-medium"
    assert default_reference(["hopper-medium", "hopper-medium-replay"]) == "hopper-medium-replay"
    monkeypatch.setattr("offrl.tools.analysis.cached_path", lambda name, size=None: tmp_path / "built.hdf5")
    (tmp_path / "built.hdf5").touch()
    assert default_reference(["hopper-medium", "hopper-expert"]) == "hopper-medium-replay"
    assert default_reference(["hopper-medium", "walker2d-expert"]) == "hopper-medium"


def test_goal_statistics_count_arrivals_successes_and_coverage(tmp_path):
    """Rows hold (achieved, desired): episode 0 reaches its goal at steps 2-3 (one arrival) and again after a
    new goal at step 5; episode 1 never does. Goals are counted per arrival, episodes by any arrival."""
    from offrl.core.spec import ObservationSpec

    spec = ObservationSpec.from_shapes({"achieved_goal": (2,), "desired_goal": (2,)})
    far, goal_a, goal_b = [5.0, 5.0], [0.0, 0.0], [2.0, 0.0]
    achieved_next = [far, far, goal_a, goal_a, far, goal_b, far, far, far, far]  # achieved goal of s'
    desired = [goal_a] * 5 + [goal_b] + [goal_a] * 4
    n = len(desired)
    observations = np.array([[*far, *d] for d in desired], np.float32)
    next_observations = np.array([[*a, *d] for a, d in zip(achieved_next, desired)], np.float32)
    timeouts = np.zeros(n, bool)
    timeouts[[5, n - 1]] = True  # episodes rows 0-5 and 6-9
    raw = {"observations": observations, "next_observations": next_observations,
           "actions": np.zeros((n, 2), np.float32), "rewards": np.zeros(n, np.float32),
           "terminals": np.zeros(n, bool), "timeouts": timeouts}
    path = write(tmp_path, "goals", raw, {"observation_spec": json.dumps(spec.to_dict()), "goal_threshold": 0.5})
    result = analyze(read_d4rl_hdf5(path))
    goals = result["goals"]
    assert goals["threshold"] == 0.5 and goals["episodes"] == 2
    assert goals["episode_success_rate"] == 0.5 and goals["goals_reached_per_episode"] == 1.0  # 2 arrivals, 2 episodes
    assert goals["steps_at_goal_fraction"] == pytest.approx(0.3)
    assert goals["desired_goal_cells"] == 2 and goals["achieved_goal_cells"] == 3
    assert goals["desired_cells_reached_fraction"] == 1.0
    plain = analyze(read_d4rl_hdf5(write(tmp_path, "plain", uniform_episodes(2, 5, 0.0, 1.0, seed=0))))
    assert plain["goals"] is None and plain["recorded_success"] is None
    recorded = {"episodes": 2, "success_rate": 0.25, "criterion": "task 1's goal state reached", "nested": {"a": 1}}
    ogbench_like = write(tmp_path, "recorded", uniform_episodes(2, 5, 0.0, 1.0, seed=0),
                         {"oracle_success": json.dumps(recorded)})
    result = analyze(read_d4rl_hdf5(ogbench_like))
    assert result["recorded_success"] == recorded
    analysis.write_report([result], [read_d4rl_hdf5(ogbench_like)], tmp_path / "report")
    assert ("- Success recorded by the generator: episodes 2, success_rate 0.250 (task 1's goal state reached)."
            in (tmp_path / "report" / "report.md").read_text())
