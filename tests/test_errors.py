"""Bad input: a one-line error naming file, key and shapes; the CLI exits 2."""

import numpy as np
import pytest

from offrl.cli import main
from offrl.core.errors import ConfigError, DatasetError
from offrl.data.d4rl import read_d4rl_hdf5, write_d4rl_hdf5
from offrl.data.sources import DatasetConfig, load_dataset
from tests.conftest import make_episodes


def _file(tmp_path, **changes):
    raw = make_episodes([4, 3], ["terminal", "timeout"], obs_dim=9, act_dim=1)
    for key, value in changes.items():
        if value is None:
            del raw[key]
        else:
            raw[key] = value
    return write_d4rl_hdf5(tmp_path / "bad.hdf5", raw, {"env_id": "InvertedDoublePendulum-v5"})


def test_missing_file(tmp_path):
    with pytest.raises(DatasetError, match=r"nope\.hdf5: no such file"):
        read_d4rl_hdf5(tmp_path / "nope.hdf5")


def test_not_hdf5(tmp_path):
    path = tmp_path / "text.hdf5"
    path.write_text("hello")
    with pytest.raises(DatasetError, match="not a readable hdf5 file"):
        read_d4rl_hdf5(path)


def test_missing_key(tmp_path):
    with pytest.raises(DatasetError, match=r"bad\.hdf5: missing key\(s\) \['actions'\]"):
        read_d4rl_hdf5(_file(tmp_path, actions=None))


def test_length_mismatch(tmp_path):
    with pytest.raises(DatasetError, match=r"key 'actions' has 5 rows, expected 7"):
        read_d4rl_hdf5(_file(tmp_path, actions=np.zeros((5, 1), np.float32)))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf(tmp_path, bad):
    obs = make_episodes([4, 3], ["terminal", "timeout"], obs_dim=9)["observations"]
    obs[2, 5] = bad
    with pytest.raises(DatasetError, match=r"key 'observations' holds NaN/inf \(first at index \(2, 5\)"):
        read_d4rl_hdf5(_file(tmp_path, observations=obs))


def test_observation_size_must_match_the_env(tmp_path):
    path = _file(tmp_path)
    cfg = DatasetConfig(name="bad", source="hdf5", path=str(path), env_id="Hopper-v5")
    with pytest.raises(DatasetError, match=r"observations have shape \(N, 9\) but env 'Hopper-v5' observes \(11,\)"):
        load_dataset(cfg)


def test_unknown_reward_normalization(tmp_path):
    cfg = DatasetConfig(name="bad", source="hdf5", path=str(_file(tmp_path)), reward_normalization="zscore")
    with pytest.raises(DatasetError, match="reward_normalization='zscore' is unknown"):
        load_dataset(cfg)


def test_hdf5_source_needs_a_path():
    with pytest.raises(ConfigError, match="dataset.path"):
        load_dataset(DatasetConfig(name="hdf5", source="hdf5"))


def _cli(args, tmp_path, capsys):
    code = main(["train", f"hydra.run.dir={tmp_path / 'run'}", *args])
    return code, capsys.readouterr().err


def test_cli_bad_file_exits_2_with_one_line(tmp_path, capsys):
    code, err = _cli(["dataset=hdf5", f"dataset.path={tmp_path / 'missing.hdf5'}"], tmp_path, capsys)
    assert code == 2
    assert "offrl: error:" in err and "missing.hdf5: no such file" in err and "Traceback" not in err


def test_cli_nan_dataset_exits_2(tmp_path, capsys):
    rewards = np.ones(7, np.float32)
    rewards[3] = np.nan
    code, err = _cli(["dataset=hdf5", f"dataset.path={_file(tmp_path, rewards=rewards)}"], tmp_path, capsys)
    assert code == 2 and "key 'rewards' holds NaN/inf" in err


def test_cli_unknown_agent_exits_2(tmp_path, capsys):
    code, err = _cli(["agent=nosuchagent"], tmp_path, capsys)
    assert code == 2 and "nosuchagent" in err


def test_cli_misspelled_key_exits_2(tmp_path, capsys):
    code, err = _cli(["trainer.stepz=10"], tmp_path, capsys)
    assert code == 2 and "stepz" in err


def test_cli_wrong_type_exits_2(tmp_path, capsys):
    code, err = _cli(["trainer.steps=many"], tmp_path, capsys)
    assert code == 2 and "many" in err


def test_cli_resume_without_a_run_exits_2(tmp_path, capsys):
    code, err = _cli([f"resume={tmp_path / 'empty'}"], tmp_path, capsys)
    assert code == 2 and "does not exist" in err and not (tmp_path / "empty").exists()


def test_cli_unknown_command_exits_2(capsys):
    assert main(["fly"]) == 2


def test_help_into_a_closed_pipe_is_quiet():
    """``offrl --help | head -1``: the reader goes away early; offrl stops quietly (no BrokenPipeError traceback)."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "offrl.cli", "--help"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # before the child has started up: its print finds the pipe closed
    err = proc.stderr.read()
    proc.wait(timeout=60)
    assert proc.returncode == 0 and b"Traceback" not in err, err
