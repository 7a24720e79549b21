"""The README's Python API example runs as written (on CPU here, device="auto")."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_python_api_example_runs(small_default_dataset, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the example exports policy.pt into the working directory
    section = README.read_text().split("## Python API", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], re.S)
    assert len(blocks) == 2 and 'resolve_device("auto")' in blocks[0] and '"cuda"' not in "".join(blocks)
    scope: dict = {}
    exec(compile(blocks[0], "README.md (Python API)", "exec"), scope)
    out = capsys.readouterr().out
    assert "loaded" in out and "normalized score" in out
    assert (tmp_path / "policy.pt").is_file() and (tmp_path / "policy.pt.json").is_file()
    assert scope["record"]["verification"]["checked"] and scope["record"]["verification"]["max_abs_diff"] <= 1e-5
    exec(compile(blocks[1], "README.md (Python API, seeds)", "exec"), scope)  # continues the first block
    assert scope["metrics"]["critic_loss"].shape == (3,)
