"""The README's Python API example runs as written (on CPU here, device="auto")."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_python_api_example_runs(small_default_dataset, capsys):
    section = README.read_text().split("## Python API", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert 'resolve_device("auto")' in code and '"cuda"' not in code
    exec(compile(code, "README.md (Python API)", "exec"), {})
    out = capsys.readouterr().out
    assert "loaded" in out and "normalized score" in out
