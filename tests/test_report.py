"""offrl report on real tiny runs made through the CLI: grouping, seed counts, rliable aggregates checked
against numpy, probability of improvement, runs in progress, figures, the Markdown table, and one-line
errors (exit 2)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from offrl.cli import main
from offrl.cli import report as cli_report
from offrl.core import checkpoint
from offrl.tools import report as rep
from offrl.tools.report import figures
from tests.conftest import FAST

REPS = "200"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, small_default_dataset) -> Path:
    """bc and td3bc on two datasets (idp-mixed; a 3000-transition build read as a plain hdf5 file, so
    its own name), td3bc seed 2 on idp-mixed missing, and a bc run in progress (seed 5, at step 10 of
    20: a copy of a finished run without results.json, its checkpoint cut back to its first evaluation)."""
    from offrl.generation.recipes import ensure_recipe_dataset

    other = ensure_recipe_dataset("idp-mixed", 3000)
    root = tmp_path_factory.mktemp("report")
    common = ["train", "-m", *FAST, "threads=1", "trainer.eval_every=10", "trainer.log_every=10",
              "trainer.eval_episodes=1", "agent=bc,td3bc",
              "hydra.sweep.subdir=${agent.name}_s${seed}"]
    assert main([*common, "trainer.steps=30", "seed=0,1,2", f"hydra.sweep.dir={root / 'a'}"]) == 0
    assert main([*common, "trainer.steps=20", "seed=0,1", "dataset=hdf5", f"dataset.path={other}",
                 f"hydra.sweep.dir={root / 'b'}"]) == 0
    shutil.rmtree(root / "a" / "td3bc_s2")
    running = root / "running" / "bc_s5"
    shutil.copytree(root / "b" / "bc_s1", running)
    (running / "results.json").unlink()
    config = running / "config.yaml"
    config.write_text(config.read_text().replace("seed: 1\n", "seed: 5\n"))
    path = running / "checkpoints" / "last.pt"
    state = checkpoint.load(path)
    state.pop("format")
    state["eval_history"] = state["eval_history"][:1]
    state["phases"]["offline"]["step"] = 10
    checkpoint.save_atomic(state, path)
    return root


@pytest.fixture(scope="module")
def made(runs, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("report-out")
    assert cli_report.main([str(runs), "--out", str(out), "--reps", REPS]) == 0
    return out, json.loads((out / "report.json").read_text())


def _results(runs: Path) -> dict[tuple[str, str, int], float]:
    found = {}
    for path in runs.rglob("results.json"):
        r = json.loads(path.read_text())
        found[(r["agent"], r["dataset"], r["seed"])] = r["normalized_score"]
    return found


def test_groups_seed_counts_and_the_run_in_progress(runs, made):
    _, report = made
    assert report["metric"] == "normalized_score"  # auto: every run has reference returns
    assert report["agents"] == ["bc", "td3bc"] and report["datasets"] == ["idp-mixed", "idp-mixed-3000"]
    groups = {(g["agent"], g["dataset"]): g for g in report["groups"]}
    assert {k: g["seeds"] for k, g in groups.items()} == {
        ("bc", "idp-mixed"): [0, 1, 2], ("td3bc", "idp-mixed"): [0, 1],
        ("bc", "idp-mixed-3000"): [0, 1], ("td3bc", "idp-mixed-3000"): [0, 1]}
    assert {k: g["n"] for k, g in groups.items()} == {k: len(g["seeds"]) for k, g in groups.items()}
    assert groups[("bc", "idp-mixed")]["steps"] == [30] and groups[("td3bc", "idp-mixed-3000")]["steps"] == [20]
    [running] = groups[("bc", "idp-mixed-3000")]["in_progress"]
    assert running["seed"] == 5 and running["step"] == 10 and running["of"] == 20 and not running["counted"]
    statuses = sorted(r["status"] for r in report["runs"])
    assert statuses.count("in progress") == 1 and statuses.count("finished") == 9
    # every counted score is the run's final normalized score from results.json
    truth = _results(runs)
    for (agent, dataset), g in groups.items():
        assert g["scores"] == pytest.approx([truth[(agent, dataset, s)] for s in g["seeds"]])
        values = np.array(g["scores"])
        assert g["mean"]["point"] == pytest.approx(values.mean())
        assert g["std"] == pytest.approx(values.std())
        assert g["median"]["point"] == pytest.approx(np.median(values))
        for name in ("mean", "iqm", "median"):
            assert g[name]["low"] - 1e-9 <= g[name]["point"] <= g[name]["high"] + 1e-9


def _numpy_iqm(values: np.ndarray) -> float:
    cut = int(0.25 * len(values))  # the middle 50%: a quarter of the runs off each end
    return float(np.sort(values)[cut:len(values) - cut].mean())


def test_iqm_is_the_mean_of_the_middle_half():
    assert rep.iqm(np.arange(8.0)) == pytest.approx(np.mean([2, 3, 4, 5]))
    values = np.random.default_rng(0).normal(size=12)
    assert rep.iqm(values) == pytest.approx(_numpy_iqm(values))


def test_aggregates_agree_with_numpy_and_intervals_hold_them(made):
    _, report = made
    aggregate = report["aggregate"]
    assert aggregate["datasets"] == ["idp-mixed", "idp-mixed-3000"] and aggregate["gamma"] == 100
    groups = {(g["agent"], g["dataset"]): np.array(g["scores"]) for g in report["groups"]}
    for agent in ("bc", "td3bc"):
        columns = [groups[(agent, d)] for d in aggregate["datasets"]]
        pooled = np.concatenate(columns)
        means = [c.mean() for c in columns]
        s = aggregate["agents"][agent]
        assert aggregate["runs"][agent] == len(pooled)
        assert s["iqm"]["point"] == pytest.approx(_numpy_iqm(pooled))
        assert s["mean"]["point"] == pytest.approx(np.mean(means))
        assert s["median"]["point"] == pytest.approx(np.median(means))
        assert s["optimality_gap"]["point"] == pytest.approx(100 - np.minimum(pooled, 100).mean())
        for name in rep.AGGREGATES:
            assert s[name]["low"] - 1e-9 <= s[name]["point"] <= s[name]["high"] + 1e-9
            assert s[name]["low"] < s[name]["high"]  # several distinct scores: a real interval
    profile = report["performance_profile"]
    for agent in ("bc", "td3bc"):
        p = profile["agents"][agent]
        assert len(p["fraction"]) == len(profile["taus"])
        assert all(0 <= f <= 1 for f in p["fraction"]) and np.all(np.diff(p["fraction"]) <= 1e-12)
        assert all(lo - 1e-9 <= f <= hi + 1e-9 for lo, f, hi in zip(p["low"], p["fraction"], p["high"]))


def test_probability_of_improvement(made):
    _, report = made
    pairs = {(p["x"], p["y"]): p for p in report["probability_of_improvement"]}
    assert set(pairs) == {("bc", "td3bc"), ("td3bc", "bc")}
    groups = {(g["agent"], g["dataset"]): np.array(g["scores"]) for g in report["groups"]}
    from rliable import metrics

    expected = np.mean([metrics.probability_of_improvement(groups[("bc", d)][:, None], groups[("td3bc", d)][:, None])
                        for d in report["datasets"]])
    forward, backward = pairs[("bc", "td3bc")], pairs[("td3bc", "bc")]
    assert forward["point"] == pytest.approx(expected)
    assert forward["point"] + backward["point"] == pytest.approx(1.0)
    for p in (forward, backward):
        assert 0 <= p["low"] <= p["point"] <= p["high"] <= 1


def test_improvement_matches_rliable_on_rectangular_scores():
    from rliable import metrics

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(4, 3)), rng.normal(size=(5, 3))
    y[0, 1] = x[2, 1]  # a tie counts half
    assert rep.improvement(x, y) == pytest.approx(metrics.probability_of_improvement(x, y))
    assert rep.improvement(x, x) == pytest.approx(0.5)


def test_learning_curves_use_the_global_step_and_include_the_run_in_progress(made):
    _, report = made
    curves = {(c["agent"], c["dataset"]): c for c in report["curves"]}
    assert curves[("bc", "idp-mixed")]["x"] == [10, 20, 30] and curves[("bc", "idp-mixed")]["n"] == [3, 3, 3]
    running = curves[("bc", "idp-mixed-3000")]
    assert running["x"] == [10, 20] and running["n"] == [3, 2] and running["in_progress"] == 1
    for c in curves.values():
        assert all(lo - 1e-9 <= m <= hi + 1e-9 for lo, m, hi in zip(c["low"], c["mean"], c["high"]))
    assert report["step_axis"] == {"idp-mixed": "gradient steps", "idp-mixed-3000": "gradient steps"}


def test_figures_and_markdown(made):
    from matplotlib.image import imread

    out, report = made
    names = ["learning_curves", "scores_by_dataset", "aggregate_metrics", "performance_profile",
             "probability_of_improvement"]
    assert sorted(report["figures"]) == sorted(names)
    for name in names:
        path = out / f"{name}.png"
        assert path.stat().st_size > 10_000
        image = imread(path)
        assert image.shape[0] > 200 and image.shape[1] > 400 and image[..., :3].std() > 0.05
    text = (out / "report.md").read_text()
    groups = {(g["agent"], g["dataset"]): g for g in report["groups"]}
    bc = groups[("bc", "idp-mixed-3000")]
    assert "| dataset | bc | td3bc |" in text
    assert f"| {bc['mean']['point']:.1f} +- {bc['std']:.1f} (n=2, +1 in progress) |" in text
    assert "seed 5: " in text and "at step 10 of 20" in text and "0, 1, 5*" in text
    for name in names:
        assert f"({name}.png)" in text


def test_by_splits_agents_by_a_config_key(runs, tmp_path):
    out = tmp_path / "by"
    assert cli_report.main([str(runs / "a"), str(runs / "b"), "--by", "trainer.steps", "--agents",
                            "bc[30],td3bc[20]", "--out", str(out), "--reps", REPS]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["by"] == "trainer.steps" and report["agents"] == ["bc[30]", "td3bc[20]"]
    groups = {(g["agent"], g["dataset"]): g["seeds"] for g in report["groups"]}
    assert groups == {("bc[30]", "idp-mixed"): [0, 1, 2], ("td3bc[20]", "idp-mixed-3000"): [0, 1]}
    assert "split by `trainer.steps`: a label `agent[v]`" in (out / "report.md").read_text()


def test_runs_evaluated_once_get_no_learning_curve_figure(made, tmp_path):
    """A curve of one point per agent says nothing a table does not: no figure, and report.md says why."""
    _, report = made
    once = {**report, "curves": [{**c, **{k: c[k][-1:] for k in ("x", "mean", "low", "high", "n")}}
                                 for c in report["curves"]]}
    assert not rep.plot_learning_curves(once, tmp_path / "curves.png", {}, {})
    assert not (tmp_path / "curves.png").exists()
    assert "evaluated at one step only" in rep.markdown({**once, "figures": {}})
    assert rep.plot_learning_curves(report, tmp_path / "curves.png", {a: "k" for a in report["agents"]},
                                    {a: "o" for a in report["agents"]})


def test_a_bounded_metric_keeps_its_axis_in_range():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots()
    ax.plot([5000, 10000], [0.0, 0.0])  # every evaluation failed: matplotlib alone would span -0.04 ... 0.04
    figures._clip_to_bounds(ax, "success_rate")
    low, high = ax.get_ylim()
    assert -0.031 <= low < 0.0 and high >= low + 0.1
    ax.set_ylim(-20, 120)
    figures._clip_to_bounds(ax, "normalized_score")  # unbounded: left alone
    assert ax.get_ylim() == (-20, 120)
    plt.close(figure)


def test_include_in_progress_counts_the_run(runs, tmp_path):
    assert cli_report.main([str(runs), "--out", str(tmp_path), "--reps", REPS, "--include-in-progress",
                            "--datasets", "idp-mixed-3000", "--agents", "bc"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    [group] = report["groups"]
    assert group["seeds"] == [0, 1, 5] and group["n"] == 3
    assert report["probability_of_improvement"] == [] and "probability_of_improvement" not in report["figures"]


def test_return_metric_has_per_dataset_statistics_only(runs, tmp_path):
    assert main(["report", str(runs / "a"), "--out", str(tmp_path), "--reps", REPS, "--metric", "return_mean"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["aggregate"] is None and report["performance_profile"] is None
    assert "aggregate_metrics" not in report["figures"] and "probability_of_improvement" in report["figures"]
    truth = {json.loads(p.read_text())["agent"]: [] for p in (runs / "a").rglob("results.json")}
    for path in sorted((runs / "a").rglob("results.json")):
        r = json.loads(path.read_text())
        truth[r["agent"]].append((r["seed"], r["return_mean"]))
    for g in report["groups"]:
        assert g["scores"] == pytest.approx([v for _, v in sorted(truth[g["agent"]])])
    assert "Not computed for raw returns" in (tmp_path / "report.md").read_text()


def test_runs_of_older_versions_without_phase_or_global_step(runs, tmp_path):
    old = tmp_path / "old" / "run"
    shutil.copytree(runs / "a" / "bc_s0", old)
    results = json.loads((old / "results.json").read_text())
    for key in ("phase_steps", "env_steps_per_s"):
        results.pop(key, None)
    results["eval_history"] = [{k: v for k, v in e.items() if k not in ("phase", "global_step")}
                               for e in results["eval_history"]]
    (old / "results.json").write_text(json.dumps(results))
    assert cli_report.main([str(tmp_path / "old"), "--out", str(tmp_path / "out"), "--reps", REPS]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    [curve] = report["curves"]
    assert curve["x"] == [10, 20, 30] and curve["mean"][-1] == pytest.approx(results["normalized_score"])


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("offrl: error: ")
    return err[0]


def test_empty_input_garbage_results_and_bad_options_exit_2_with_one_line(tmp_path, capsys, runs):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(empty), "--out", str(tmp_path / "o")]) == 2
    assert "no runs found" in _one_error_line(capsys)
    assert not (tmp_path / "o").exists()

    bad = tmp_path / "bad" / "run"
    bad.mkdir(parents=True)
    (bad / "results.json").write_text("{not json")
    assert cli_report.main([str(tmp_path / "bad"), "--out", str(tmp_path / "o")]) == 2
    assert str(bad / "results.json") in _one_error_line(capsys)
    (bad / "results.json").write_text("[1, 2]")
    assert cli_report.main([str(tmp_path / "bad"), "--out", str(tmp_path / "o")]) == 2
    assert "not an offrl results file" in _one_error_line(capsys)

    assert cli_report.main([str(tmp_path / "missing")]) == 2
    assert "no such file or directory" in _one_error_line(capsys)
    for options in (["--reps", "0"], ["--reps", "many"], ["--metric", "score"], ["--bogus"], []):
        assert cli_report.main([*([str(runs)] if options else []), *options]) == 2
        _one_error_line(capsys)
    assert cli_report.main([str(runs), "--agents", "sac"]) == 2
    assert "no runs left" in _one_error_line(capsys)
    assert cli_report.main([str(runs / "a"), "--metric", "success_rate"]) == 2
    assert "no run records success_rate" in _one_error_line(capsys)


def _make_readme_tables():
    """benchmarks/make_tables.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location(
        "make_tables", Path(__file__).resolve().parent.parent / "benchmarks" / "make_tables.py")
    tables = importlib.util.module_from_spec(spec)
    sys.modules["make_tables"] = tables  # its dataclasses look their module up there
    spec.loader.exec_module(tables)
    return tables


def test_make_tables_from_archived_records(runs, tmp_path, capsys):
    tables = _make_readme_tables()
    shutil.copytree(runs / "a", tmp_path / "runs" / "offline_table")
    # a summary from before records: its cells fill those the records lack (marked), records win over it
    tables.PRE_RECORDS = {"offline_table": tmp_path / "pre_records.json"}
    tables.PRE_RECORDS["offline_table"].write_text(json.dumps({"rows": [
        {"agent": "bc", "dataset": "idp-mixed", "mean": -1.0, "std": 0.0},
        {"agent": "prdc", "dataset": "idp-mixed", "mean": 5.0, "std": 1.0},
        {"agent": "bc", "dataset": "hopper-medium", "mean": 70.0, "std": 2.0}]}))
    readme = tmp_path / "README.md"
    readme.write_text("before\n\n<!-- results:start -->\nold\n<!-- results:end -->\n\nafter\n")
    records, docs = tmp_path / "records", tmp_path / "docs"
    assert tables.main(["--runs", str(tmp_path / "runs"), "--records", str(records), "--archive", "--reports",
                        str(tmp_path / "reports"), "--reps", REPS, "--readme", str(readme), "--docs", str(docs),
                        "--only", "offline_table"]) == 0
    # the records are the runs' results.json, config.yaml and training diagnostics only; the report reads
    # nothing else
    assert sorted(str(p.relative_to(records)) for p in records.rglob("*") if p.is_file()) == sorted(
        f"offline_table/{run}/{name}" for run in ("bc_s0", "bc_s1", "bc_s2", "td3bc_s0", "td3bc_s1")
        for name in ("config.yaml", "results.json", "scalars.json"))
    # scalars.json: every train/* scalar TensorBoard holds, at the logged steps (log_every=10 of 30)
    scalars = json.loads((records / "offline_table" / "td3bc_s0" / "scalars.json").read_text())
    assert {"train/critic_loss", "train/actor_loss"} <= set(scalars) and all(t.startswith("train/") for t in scalars)
    assert [step for step, _ in scalars["train/critic_loss"]] == [10, 20, 30]
    assert tables.training_scalars(runs / "a" / "td3bc_s0" / "tb") == scalars
    assert tables.last_logged(records / "offline_table" / "td3bc_s0", "train/critic_loss", 2) == pytest.approx(
        (scalars["train/critic_loss"][1][1] + scalars["train/critic_loss"][2][1]) / 2)
    shutil.rmtree(tmp_path / "runs")
    report = json.loads((tmp_path / "reports" / "offline_table" / "report.json").read_text())
    bc, td3bc = (next(g for g in report["groups"] if g["agent"] == a) for a in ("bc", "td3bc"))
    assert (bc["n"], td3bc["n"]) == (3, 2)
    # the table, with its caption, as a fragment the results page includes (mean \u00b1 std as the pages show it)
    table = (docs / "results" / "_tables" / "offline_table.md").read_text()
    row = (f"| idp-mixed |  | {bc['mean']['point']:.1f} \u00b1 {bc['std']:.1f} | "
           f"{td3bc['mean']['point']:.1f} \u00b1 {td3bc['std']:.1f} (n=2) | 5.0 \u00b1 1.0 \u2020 |")
    assert ("| dataset | TQ | BC | TD3+BC | PRDC |\n|---|---:|---:|---:|---:|\n"
            "| hopper-medium | 0.42 | 70.0 \u00b1 2.0 \u2020 |  |  |\n" + row) in table
    assert "**Offline agents" in table and "Budget: 10,000 gradient steps" in table
    # each agent's rows for its algorithm page, with the budget beside every number
    assert "| idp-mixed | " in (docs / "algorithms" / "_results" / "bc.md").read_text()
    assert "30 updates (0.003% of 1M)" in (docs / "algorithms" / "_results" / "bc.md").read_text()
    # the README's block is rewritten between its markers, the text around it left alone
    text = readme.read_text()
    assert text.startswith("before\n\n<!-- results:start -->\n| agent |")
    assert text.endswith("<!-- results:end -->\n\nafter\n")
    assert "old" not in text
    assert tables.main(["--records", str(records), "--reports", str(tmp_path / "again"), "--reps", REPS,
                        "--docs", str(tmp_path / "docs2"), "--readme", str(readme), "--only", "offline_table"]) == 0
    assert json.loads((tmp_path / "again" / "offline_table" / "report.json").read_text())["groups"] == report["groups"]


def test_offline_table_tq_is_that_of_the_build_the_runs_trained_on(tmp_path):
    tables = _make_readme_tables()
    for family, entries in (("one", [("d", 100, 10, 0.25), ("e", 5, 1, 0.5)]), ("two", [("d", 90, 9, 0.75)])):
        (tmp_path / family).mkdir()
        (tmp_path / family / "analysis.json").write_text(json.dumps({"datasets": [
            {"name": n, "transitions": t, "episodes": {"count": e}, "tq": {"value": v}} for n, t, e, v in entries]}))
    tq = tables.task_quality(tmp_path)
    assert tq == {"d": {(100, 10): 0.25, (90, 9): 0.75}, "e": {(5, 1): 0.5}}

    def table(*builds):
        runs = []
        for i, (transitions, episodes) in enumerate(builds):
            (tmp_path / f"run{i}").mkdir(exist_ok=True)
            (tmp_path / f"run{i}" / "results.json").write_text(json.dumps(
                {"data": {"transitions": transitions, "episodes": episodes}}))
            runs.append(str(tmp_path / f"run{i}"))
        report = {"groups": [{"agent": "bc", "dataset": "d", "runs": runs, "n": 3, "mean": {"point": 1.0},
                              "std": 0.0}]}
        pre_records = [{"agent": "bc", "dataset": "e", "mean": 2.0, "std": 0.0}]  # no build recorded
        return tables.offline_table(report, tq, pre_records).splitlines()[2:]

    assert table((90, 9)) == ["| d | 0.75 | 1.0 +- 0.0 |", "| e | 0.50 | 2.0 +- 0.0 \u2020 |"]
    assert table((100, 10), (90, 9))[0] == "| d | 0.75 / 0.25 | 1.0 +- 0.0 |"
    assert table((80, 8))[0] == "| d |  | 1.0 +- 0.0 |"  # a build nobody analysed: no TQ rather than another's


def test_ablation_table_reads_scores_from_the_report_and_diagnostics_from_the_records(tmp_path):
    tables = _make_readme_tables()
    runs = []
    for mode, residuals in (("orthogonal", [-0.5, -0.8]), ("semi", [-0.9, -0.7])):
        for seed, shift in enumerate((0.0, 0.2)):
            record = tmp_path / f"{mode}_s{seed}"
            record.mkdir()
            scalars = {"train/forward_residual": [[1000 * (i + 1), -9.0 if i < 2 else r + shift]
                                                  for i, r in enumerate([0, 0, *residuals, residuals[-1]])],
                       "train/weight_zero_fraction": [[1000, 0.9]], "train/v": [[1000, 50.0]]}
            if mode == "semi" and seed == 1:
                del scalars["train/v"]  # a seed without a diagnostic leaves its cell empty
            (record / "scalars.json").write_text(json.dumps(scalars))
            runs.append({"agent": f"odice[{mode}]", "path": str(record), "status": "finished"})
    report = {"datasets": ["hopper-medium-replay"], "runs": runs, "groups": [
        {"agent": "odice[orthogonal]", "dataset": "hopper-medium-replay", "mean": {"point": 7.94}, "std": 2.76,
         "n": 3},
        {"agent": "odice[semi]", "dataset": "hopper-medium-replay", "mean": {"point": 8.0}, "std": 1.0, "n": 2}]}
    pre = [{"agent": "odice[true]", "dataset": "hopper-medium-replay", "mean": 21.2, "std": 14.9}]
    # orthogonal's last three residuals: (-0.5, -0.8, -0.8) and each + 0.2: mean -0.6
    assert tables.ablation_table(report, {}, pre).split("\n") == [
        "| update mode | normalized score | mean forward residual | zero-weight share | mean V |",
        "|---|---:|---:|---:|---:|",
        "| orthogonal (O-DICE) | 7.9 +- 2.8 | -0.60 | 90% | 50.0 |",
        "| semi (forward only) | 8.0 +- 1.0 (n=2) | -0.67 | 90% |  |",
        "| true (plain sum) | 21.2 +- 14.9 \u2020 |  |  |  |"]
    # written into a list item, the table keeps the old one's indentation
    table = "| update mode | normalized score |\n|---|---:|\n| orthogonal (O-DICE) | 1.0 |"
    text, found = tables.replace_table("- item:\n\n  | update mode | normalized score |\n  |---|---:|\n  | old | 0 |\n"
                                       "\n  after", table)
    assert found and text == "- item:\n\n  " + table.replace("\n", "\n  ") + "\n\n  after"


def test_quality_table_from_the_family_analyses(tmp_path):
    tables = _make_readme_tables()
    for family in tables.FAMILIES:
        (tmp_path / family).mkdir()
        entries = [{"name": f"{family}-random-100000", "tq": {"value": -1e-5}, "saco": {"value": 0.5}},
                   {"name": f"{family}-expert", "tq": {"value": 0.99}, "saco": {"value": 0.25}}]
        (tmp_path / family / "analysis.json").write_text(json.dumps({"datasets": entries}))
    lines = tables.quality_table(tmp_path).split("\n")
    assert lines[0] == ("| quality | hopper TQ | hopper SACo | halfcheetah TQ | halfcheetah SACo | walker2d TQ | "
                        "walker2d SACo |")
    assert lines[2] == "| random (100k) | " + " | ".join(["0.000 | 0.500"] * 3) + " |"
    assert lines[3] == "| medium | " + " | ".join([""] * 6) + " |"
    assert lines[-1] == "| expert | " + " | ".join(["0.990 | 0.250"] * 3) + " |"


def test_dynamics_table_from_its_json(tmp_path):
    tables = _make_readme_tables()
    path = tmp_path / "dynamics.json"
    path.write_text(json.dumps({"rows": [{"guidance_coef": 0.3, "agent_log_prob": 1.257, "next_obs_mse": 0.06508,
                                          "next_obs_mse_relative": 0.0295, "reward_abs_error": 0.2}]}))
    assert tables.dynamics_table(path).split("\n")[2:] == ["| 0.3 | 1.26 | 0.0651 | 0.029 | 0.200 |"]


def test_synthetic_table_takes_pre_records_cells_the_records_lack():
    tables = _make_readme_tables()
    report = {"groups": [
        {"agent": "td3bc[?,0.0]", "dataset": "hopper-medium", "mean": {"point": 41.0}, "std": 2.0, "n": 3},
        {"agent": "td3bc[m,1.0]", "dataset": "hopper-medium", "mean": {"point": 30.0}, "std": 1.0, "n": 2}]}
    pre = [{"agent": "td3bc[?,0.0]", "dataset": "hopper-medium", "mean": 40.5, "std": 7.8, "n": 3},
           {"agent": "td3bc[m,0.0]", "dataset": "hopper-medium", "mean": 28.8, "std": 0.6, "n": 3},
           {"agent": "iql[?,0.0]", "dataset": "hopper-medium", "mean": 32.8, "std": 12.3, "n": 3}]
    assert tables.synthetic_table(report, {}, pre).split("\n")[2:] == [
        "| hopper-medium | TD3+BC | 41.0 +- 2.0 (n=3) | 28.8 +- 0.6 (n=3) \u2020 | 30.0 +- 1.0 (n=2) |",
        "| hopper-medium | IQL | 32.8 +- 12.3 (n=3) \u2020 |  |  |"]


def test_experiment_scripts_train_once_skips_finished_runs_and_resumes_stopped_ones(tmp_path):
    """benchmarks/lib.sh's train_once, with a stand-in `offrl` that logs its arguments."""
    import subprocess

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "offrl").write_text('#!/bin/sh\necho "$@" >> "$LOG"\n')
    (bin_dir / "offrl").chmod(0o755)
    for finished in ("benchmarks/records/x/recorded/results.json", "benchmarks/runs/x/done/results.json",
                     "benchmarks/runs/x/stopped/checkpoints/last.pt", "benchmarks/runs/x/fresh/stale.txt"):
        (tmp_path / finished).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / finished).write_text("{}")
    lib = Path(__file__).resolve().parent.parent / "benchmarks" / "lib.sh"
    script = (f"source {lib}; for run in recorded done stopped fresh; do train_once x $run seed=1 'a b=c'; done")
    log = tmp_path / "log"
    subprocess.run(["bash", "-c", script], cwd=tmp_path, check=True,
                   env={"PATH": f"{bin_dir}:/usr/bin:/bin", "LOG": str(log)})
    assert log.read_text().splitlines() == ["train resume=benchmarks/runs/x/stopped",
                                            "train seed=1 a b=c hydra.run.dir=benchmarks/runs/x/fresh"]
    assert not (tmp_path / "benchmarks/runs/x/fresh/stale.txt").exists()  # a run without a checkpoint restarts


def _parity_record(impl: str, seed: int, rate: float, cpu: str, episodes: int, sha: str | None) -> dict:
    record = {"impl": impl, "algo": "td3bc", "dataset": "hopper-medium-replay", "size": None, "seed": seed,
              "date": "2026-12-08", "cpu": cpu, "torch": "2.13.0", "version": "2.8.1" if impl == "d3rlpy" else "0",
              "pinned_core": 0, "normalized_score": 30.0 + seed, "pretrain_normalized_score": None,
              "updates_per_s": rate, "benchmark_command": "python benchmarks/parity_d3rlpy.py",
              "budget": {"offline_updates": 50000, "online_env_steps": 0, "batch_size": 256, "eval_episodes": 10},
              "data": {"transitions": 178000, "episodes": episodes, "sha256": sha}}
    if impl == "d3rlpy":
        record |= {"loop_updates_per_s": rate / 2, "loop_window": [1000, 50000], "mapping": {"mismatches": []}}
    return record


def test_parity_table_pairs_seeds_and_names_each_build(tmp_path):
    tables = _make_readme_tables()
    amd, intel = "AMD EPYC 9B14", "Intel(R) Xeon(R) Processor"
    records = [  # seed 0 on one machine's build (before digests), seeds 1-2 on another's; seed 2's sides disagree
        _parity_record("offrl", 0, 100.0, amd, 1127, None), _parity_record("d3rlpy", 0, 50.0, amd, 1127, None),
        _parity_record("offrl", 1, 400.0, intel, 1357, "aa"), _parity_record("d3rlpy", 1, 100.0, intel, 1357, "aa"),
        _parity_record("offrl", 2, 100.0, intel, 1357, "aa"), _parity_record("d3rlpy", 2, 100.0, intel, 1357, "bb")]
    for i, record in enumerate(records):
        (tmp_path / f"{i}.json").write_text(json.dumps(record))
    text = tables.parity_fragment(tmp_path)
    row = next(line for line in text.splitlines() if line.startswith("| hopper-medium-replay | TD3+BC"))
    # the mean of the per-seed ratios 2, 4 and 1 (not the ratio of the mean rates, 600 / 250 = 2.40), and their range
    assert "| 2.33 (1.00-4.00) |" in row and row.endswith("| AMD EPYC, Intel Xeon |")
    assert "1,127 episodes, built on AMD EPYC (2 records" in text and "1,357 episodes, built on Intel Xeon (4" in text
    assert "Not paired on the same bytes" in text and "seed 2" in text.split("Not paired")[1]
    # one machine: no CPU column, no builds list
    for i in range(2, 6):
        (tmp_path / f"{i}.json").unlink()
    one = tables.parity_fragment(tmp_path)
    assert "| CPU |" not in one and "built more than once" not in one
