"""The documentation cannot fall behind the code: every agent, dataset recipe, command, config group and option and
every module has its page or entry; the generated result tables are those the committed records give; and, where
mkdocs is installed (the `docs` extra), the site builds strictly. The README's and the pages' examples are run by
tests/test_readme.py."""

import filecmp
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest
import yaml

from offrl.agents import AGENTS
from offrl.cli import COMMANDS
from offrl.data.goals import GoalRelabelConfig
from offrl.data.sources import DatasetConfig
from offrl.diffusion.synthetic import SyntheticConfig
from offrl.generation.recipes import dataset_names
from offrl.training.run import RunConfig
from offrl.training.trainer import TrainerConfig

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CONF = ROOT / "conf"


def text(*parts: str) -> str:
    return (DOCS.joinpath(*parts)).read_text()


def nav_pages() -> list[str]:
    """Every page mkdocs.yml's nav names (relative to docs/)."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text().replace("!!python/name:", ""))
    pages: list[str] = []

    def walk(node) -> None:
        if isinstance(node, str):
            pages.append(node)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)

    walk(config["nav"])
    return pages


def test_every_agent_has_its_algorithm_page():
    nav = nav_pages()
    for name in [*AGENTS, "pgd"]:
        page = f"algorithms/{name}.md"
        assert (DOCS / page).is_file(), f"agent {name} has no page {page}"
        assert page in nav, f"{page} is not in mkdocs.yml's nav"
        assert (DOCS / "algorithms" / "_results" / f"{name}.md").is_file()
        assert f'--8<-- "algorithms/_results/{name}.md"' in text("algorithms", f"{name}.md"), \
            f"{page} does not include its generated results"


def test_every_dataset_recipe_is_in_the_datasets_reference():
    reference = text("reference", "datasets.md")
    missing = [name for name in dataset_names() if f"`{name}`" not in reference]
    assert not missing, f"datasets without an entry in docs/reference/datasets.md: {missing}"
    for option in ("hdf5", "minari"):  # the dataset group's options for your own data
        assert f"dataset={option}" in text("guide", "own-data.md")


def _subcommands(module: str) -> list[str]:
    """The subcommands of a command module: its argparse subparsers, or (offrl diffusion) its documented ones."""
    source = (ROOT / "offrl" / "cli" / f"{module}.py").read_text()
    found = re.findall(r"add_parser\(\s*\"([a-z-]+)\"", source)
    if module == "diffusion":
        found = re.findall(r"offrl diffusion ([a-z]+) ", source.split('"""', 2)[1])
    return sorted(set(found))


def test_every_command_and_subcommand_is_documented():
    cli = text("reference", "cli.md")
    guide = "\n".join(p.read_text() for p in (DOCS / "guide").glob("*.md"))
    commands = []
    for name in COMMANDS:
        subs = _subcommands(name) if name in ("datasets", "diffusion") else []
        commands += [f"offrl {name} {sub}" for sub in subs] or [f"offrl {name}"]
    assert {"offrl datasets build", "offrl datasets analyze", "offrl diffusion sample"} <= set(commands)
    for command in commands:
        assert f"## {command}" in cli or f"`{command}`" in cli, f"{command} has no entry in docs/reference/cli.md"
        assert command in guide, f"{command} is not shown in the user guide"


def test_every_config_group_option_and_key_is_in_the_configuration_reference():
    config = text("reference", "config.md")
    groups = sorted({str(p.parent.relative_to(CONF)) for p in CONF.rglob("*.yaml") if p.parent != CONF})
    assert {"agent", "dataset", "trainer", "tuning", "synthetic", "hydra/launcher"} == set(groups)
    for group in groups:
        assert f"`{group}`" in config, f"config group {group} is missing from docs/reference/config.md"
        if group in ("dataset", "tuning"):
            continue  # datasets: the datasets reference (above); tuning: one row per agent, below
        for option in sorted(p.stem for p in (CONF / group).glob("*.yaml")):
            assert f"`{option}`" in config, f"{group}={option} is missing from docs/reference/config.md"
    for agent in sorted({p.stem.split("_", 1)[0] for p in (CONF / "tuning").glob("*.yaml")}):
        assert f"| `{agent}` |" in config, f"the tuning files of {agent} are not in docs/reference/config.md"
    for cls, prefix in ((RunConfig, ""), (TrainerConfig, ""), (DatasetConfig, ""), (GoalRelabelConfig, ""),
                        (SyntheticConfig, "")):
        for field in fields(cls):
            if is_dataclass(field.type) or field.name in ("relabel", "policy"):
                continue
            assert f"`{prefix}{field.name}`" in config or f"`policy.{field.name}`" in config, \
                f"{cls.__name__}.{field.name} is missing from docs/reference/config.md"


def test_every_module_is_in_the_api_reference():
    documented = set(re.findall(r"^::: ([\w.]+)$", "\n".join(
        p.read_text() for p in (DOCS / "reference" / "api").glob("*.md")), re.M))
    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
               for p in (ROOT / "offrl").rglob("*.py") if p.name != "__main__.py"} - {"offrl"}
    assert not modules - documented, f"modules missing from docs/reference/api/: {sorted(modules - documented)}"
    assert not documented - modules, f"docs/reference/api/ names modules that do not exist: {documented - modules}"


def _make_tables():
    spec = importlib.util.spec_from_file_location("make_tables", ROOT / "benchmarks" / "make_tables.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_tables"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_generated_tables_are_up_to_date(tmp_path):
    """The committed tables, algorithm-page fragments and README block are what the generator writes from the
    committed reports (``python benchmarks/make_tables.py --pages-only`` rewrites them)."""
    tables = _make_tables()
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    written = tables.write_pages(tables.RESULTS / "reports", tmp_path / "docs", tmp_path / "README.md")
    stale = []
    for path in written:
        committed = ROOT / path.relative_to(tmp_path)
        if not committed.is_file() or not filecmp.cmp(path, committed, shallow=False):
            stale.append(str(committed.relative_to(ROOT)))
    for folder in ("results/_tables", "algorithms/_results"):  # no fragment left behind by a removed table
        for committed in (DOCS / folder).glob("*.md"):
            if not (tmp_path / "docs" / folder / committed.name).is_file():
                stale.append(str(committed.relative_to(ROOT)))
    assert not stale, f"out of date (python benchmarks/make_tables.py --pages-only): {stale}"


def test_committed_reports_were_made_from_the_records_as_they_are():
    """Each experiment's report.json holds exactly the runs its records hold, each with the final score its record
    has, so a table cannot come from records that changed since (re-run: python benchmarks/make_tables.py)."""
    from offrl.tools.report import find_runs

    tables = _make_tables()
    records = ROOT / "benchmarks" / "records"
    for name, experiment in tables.EXPERIMENTS.items():
        report = json.loads((tables.RESULTS / "reports" / name / "report.json").read_text())
        dirs = [records / d for d in experiment.subdirs if (records / d).is_dir()]
        found = {str(run.path.resolve().relative_to(ROOT)) for run in find_runs(dirs)}
        reported = {r["path"]: r for r in report["runs"]}
        listed = set(reported)
        if "--agents" in experiment.options or "--datasets" in experiment.options:
            assert listed <= found, f"{name}: report.json names runs that are not in the records"
        else:
            assert listed == found, f"{name}: the records and report.json hold different runs"
        for path, run in reported.items():
            result = json.loads((ROOT / path / "results.json").read_text())
            assert result[report["metric"]] == pytest.approx(run["score"]), f"{name}: {path} changed since its report"


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="mkdocs is not installed (the docs extra)")
def test_site_builds_strictly(tmp_path):
    """mkdocs build --strict: a broken link or anchor, a page missing from the nav, a missing include or a docstring
    mkdocstrings cannot render fails (.ci/run builds it too)."""
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "api" / "training" / "index.html").is_file()
