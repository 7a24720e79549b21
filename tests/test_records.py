"""Run records (offrl.core.records): the one module that writes and reads what a run leaves behind."""

from __future__ import annotations

import json

import pytest

from offrl.core import records
from offrl.core.errors import OffrlError


def test_results_round_trip_with_the_record_format(tmp_path):
    path = records.write_results(tmp_path, {"agent": "td3bc", "return_mean": 1.5})
    assert json.loads(path.read_text())["record_format"] == records.RECORD_FORMAT
    assert records.read_results(tmp_path)["return_mean"] == 1.5
    assert not list(tmp_path.glob(".*.tmp"))


def test_results_written_before_the_format_are_read_and_later_formats_refused(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps({"agent": "bc", "return_mean": 2.0}))  # before 2026-12-07
    assert records.read_results(tmp_path)["return_mean"] == 2.0
    (tmp_path / "results.json").write_text(json.dumps({"agent": "bc", "record_format": records.RECORD_FORMAT + 1}))
    with pytest.raises(OffrlError, match=f"record format {records.RECORD_FORMAT + 1} was written by a later offrl"):
        records.read_results(tmp_path)
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(OffrlError, match="unreadable results file"):
        records.read_results(tmp_path)


def test_config_and_run_info(tmp_path):
    records.write_config(tmp_path, {"seed": 3, "agent": {"name": "iql"}})
    assert records.read_config(tmp_path) == {"seed": 3, "agent": {"name": "iql"}}
    (tmp_path / "config.yaml").write_text("a: [unclosed")
    with pytest.raises(OffrlError, match="not readable YAML"):
        records.read_config(tmp_path)
    info = records.RunInfo(agent="sac", obs_dim=3, act_dim=1, device="cpu", env_id="Pendulum-v1")
    assert records.run_info({"run": info.as_dict()}, "x") == info
    with pytest.raises(OffrlError, match="lacks \\['obs_dim'\\]"):
        records.run_info({"run": {"agent": "sac", "act_dim": 1, "device": "cpu"}}, "x")


def test_checkpoint_names(tmp_path):
    run = records.RunDir(tmp_path)
    with pytest.raises(OffrlError, match="holds no checkpoint"):
        run.checkpoint("last")
    run.snapshot(10).parent.mkdir()
    run.snapshot(10).write_bytes(b"")
    assert run.checkpoints() == ["step_10"] and run.checkpoint("step_10") == run.snapshot(10)
    assert records.canonical_checkpoint("step_00000010") == "step_10"
    with pytest.raises(OffrlError, match="this run has: step_10"):
        run.checkpoint("best")
