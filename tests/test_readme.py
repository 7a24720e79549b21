"""The README and the documentation as a newcomer meets them: the README is short, undated and points at files that
exist; the Python examples of the README and of every documentation page run as written (on CPU here,
device="auto"); every `offrl train` command line they show composes."""

import re
import shlex
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
NOT_RUN = "<!-- not run:"  # written on the line before a python block that needs what a test cannot give it


def pages() -> list[Path]:
    """The README and every documentation page (not the fragments the pages include)."""
    return [README, *sorted(p for p in DOCS.rglob("*.md") if not any(part.startswith("_") for part in p.parts))]


def blocks(text: str, language: str) -> list[str]:
    """The ``language`` code blocks of a Markdown text, except those marked as not run."""
    found = []
    for match in re.finditer(rf"^```{language}\n(.*?)^```", text, re.S | re.M):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        if not before.startswith(NOT_RUN):
            found.append(match.group(1))
    return found


def test_readme_is_short_and_says_no_dates_or_machines():
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", text), "dates belong in the results' captions, not in the README"
    for machine in ("EPYC", "Xeon", "AVX", "2-core", "this machine"):
        assert machine not in text
    # the set-up commands, the main job and the line it ends with, the test command CI runs
    assert "python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[dev]'\noffrl train\n" in text
    assert "offrl: td3bc on idp-mixed: normalized score" in text
    assert "```bash\npython -m pytest -q\n```" in text
    assert "<!-- results:start -->" in text and "<!-- results:end -->" in text
    for name in ("LICENSE", "CITATION.cff", "CHANGELOG.md"):
        assert (ROOT / name).is_file() and f"({name})" in text


def test_readme_links_point_at_files_in_the_repository():
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text()):
        if "://" in target:
            continue
        path = (ROOT / target).resolve()
        assert path.is_relative_to(ROOT), f"README links outside the repository: {target}"
        assert path.exists(), f"README links to a missing file: {target}"


def test_python_api_example_runs(small_default_dataset, capsys, tmp_path, monkeypatch):
    """The Python API guide's two blocks, as written: the second continues the first."""
    monkeypatch.chdir(tmp_path)  # the example exports policy.pt into the working directory
    found = blocks((DOCS / "guide" / "python-api.md").read_text(), "python")
    assert len(found) == 2 and 'resolve_device("auto")' in found[0] and '"cuda"' not in "".join(found)
    scope: dict = {}
    exec(compile(found[0], "docs/guide/python-api.md (Python API)", "exec"), scope)
    out = capsys.readouterr().out
    assert "loaded" in out and "normalized score" in out
    assert (tmp_path / "policy.pt").is_file() and (tmp_path / "policy.pt.json").is_file()
    assert scope["record"]["verification"]["checked"] and scope["record"]["verification"]["max_abs_diff"] <= 1e-5
    exec(compile(found[1], "docs/guide/python-api.md (Python API, seeds)", "exec"), scope)
    assert scope["metrics"]["critic_loss"].shape == (3,)


def test_every_other_python_block_runs(tmp_path, monkeypatch):
    """Every python block of the README and the documentation (the Python API guide's above) runs, each page's
    blocks in one scope, in order."""
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    ran = 0
    try:
        for page in pages():
            if page == DOCS / "guide" / "python-api.md":
                continue
            scope: dict = {}
            for i, block in enumerate(blocks(page.read_text(), "python")):
                exec(compile(block, f"{page.relative_to(ROOT)} (python block {i + 1})", "exec"), scope)
                ran += 1
    finally:
        torch.set_num_threads(threads)  # docs/guide/threads.md sets it, as offrl train does
    assert ran >= 2


def train_commands() -> list[tuple[str, list[str]]]:
    """Every `offrl train` line of a bash block that names no placeholder (<...>, ...), as (page, overrides)."""
    found = []
    for page in pages():
        for block in blocks(page.read_text(), "bash"):
            for line in block.replace("\\\n", " ").splitlines():
                command = line.split("#", 1)[0].strip()
                if not command.startswith("offrl train") or re.search(r"<|>|\.\.\.|\bN\b|=DIR|\$", command):
                    continue
                words = shlex.split(command)[2:]
                if any(w in ("--help", "-h") or w.startswith("resume=") for w in words):
                    continue  # a resume names a run that exists
                found.append((str(page.relative_to(ROOT)), words))
    return found


def test_documented_train_commands_compose():
    """What offrl train checks before it runs (composition, typed configs, group options) passes for every command
    line the README and the documentation show, so they cannot name a key or option that no longer exists."""
    from offrl.cli import train as cli_train

    commands = train_commands()
    assert len(commands) >= 30
    cli_train._register_schemas()
    for page, words in commands:
        overrides = [w for w in words if w not in ("--cfg", "job")]
        overrides = [o.replace("device=cuda", "device=cpu") for o in overrides]  # no GPU needed to check the rest
        try:
            cli_train._check_overrides(overrides)
        except Exception as err:  # noqa: BLE001 - the page and the line make the failure readable
            pytest.fail(f"{page}: offrl train {' '.join(words)}: {err}")
