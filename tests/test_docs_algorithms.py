"""The algorithm pages (docs/algorithms/): one per agent, configuration tables generated from the code with a
meaning for every field, and every reference to a page in the code pointing at a page and section that exist."""

import dataclasses
import importlib.util
import re
import unicodedata
from pathlib import Path

import pytest

from offrl.agents import AGENTS

ROOT = Path(__file__).resolve().parent.parent
PAGES = ROOT / "docs" / "algorithms"
PAGE_REFERENCE = re.compile(r"docs/algorithms/([\w-]+)\.md(?:#([\w-]+))?")
EXTRA_PAGES = {"pgd": ["offrl.diffusion.trajectory.TrajectoryModelConfig", "offrl.diffusion.synthetic.SyntheticConfig"]}


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hooks = _hooks()


def _dotted(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _slug(heading: str) -> str:
    """Python-Markdown's toc anchor of a heading (its default slugify)."""
    text = unicodedata.normalize("NFKD", heading).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # no headings inside code blocks
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, flags=re.M)}


def _pages() -> list[Path]:
    return sorted(p for p in PAGES.glob("*.md") if not p.name.startswith("_"))


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_every_agent_has_a_page_with_the_table_of_its_config_class(name):
    page = PAGES / f"{name}.md"
    assert page.is_file(), f"agent {name} has no page {page.relative_to(ROOT)}"
    text = page.read_text()
    assert _dotted(AGENTS[name].config_class) in hooks.CONFIG_MARKER.findall(text)
    assert f'--8<-- "algorithms/_results/{name}.md"' in text  # its generated results
    assert f"({name}.md)" in (PAGES / "index.md").read_text()  # listed in the index


def test_pages_beyond_the_agents_name_their_config_classes():
    for name, classes in EXTRA_PAGES.items():
        text = (PAGES / f"{name}.md").read_text()
        assert set(classes) <= set(hooks.CONFIG_MARKER.findall(text)), name
        assert f"({name}.md)" in (PAGES / "index.md").read_text()


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.name)
def test_every_marker_renders_a_row_with_a_meaning_for_every_field(page):
    text = page.read_text()
    for dotted in hooks.CONFIG_MARKER.findall(text):
        cls = hooks.config_class(dotted)
        rows = hooks.config_table(dotted).splitlines()[2:]
        assert len(rows) == len(dataclasses.fields(cls)), dotted
        for row in rows:
            meaning = re.split(r"(?<!\\)\|", row)[5].strip()
            assert meaning, row
    for agent in hooks.TUNING_MARKER.findall(text):
        assert hooks.tuning_table(agent)
    rendered = hooks.on_page_markdown(text)
    assert "config-table:" not in rendered and "tuning-table:" not in rendered


@dataclasses.dataclass
class _Undocumented:
    documented: int = 1  # a field with a meaning
    bare: float = 2.0


def test_a_field_without_a_comment_stops_the_build():
    with pytest.raises(hooks.DocsError, match="_Undocumented.bare has no trailing"):
        hooks.config_table(f"{__name__}._Undocumented")
    assert hooks.meaning(_Undocumented, dataclasses.fields(_Undocumented)[0]) == "a field with a meaning"
    with pytest.raises(hooks.DocsError, match="cannot import"):
        hooks.config_class("offrl.agents.nosuch.NoConfig")


def test_inherited_fields_are_marked_with_their_class():
    table = hooks.config_table("offrl.agents.prdc.PRDCConfig")
    assert "`alpha`<br>*from `TD3BCConfig`*" in table
    assert "`normalize_states`<br>*from `AgentConfig`*" in table
    assert "| `beta` |" in table  # PRDC's own field, unmarked


def test_references_to_pages_point_at_existing_pages_and_sections():
    found = 0
    for path in [*ROOT.glob("offrl/**/*.py"), *ROOT.glob("tests/*.py"), *ROOT.glob("conf/**/*.yaml")]:
        for match in PAGE_REFERENCE.finditer(path.read_text()):
            name, anchor = match.groups()
            page = PAGES / f"{name}.md"
            where = f"{path.relative_to(ROOT)}: {match.group(0)}"
            assert page.is_file(), where
            assert anchor is None or anchor in _anchors(page), where
            found += 1
    assert found > 40  # the code's pointers to the method, its defaults and its decisions


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.name)
def test_files_and_tests_a_page_names_exist(page):
    text = page.read_text()
    for path in re.findall(r"\b((?:benchmarks|offrl|tests|conf)/[\w./-]*\w)", text):
        if "<" not in path and not path.endswith("_<dataset>"):
            assert (ROOT / path).exists() or (ROOT / path).with_suffix("").exists(), f"{page.name}: {path}"
    for file, name in re.findall(r"(tests/test_\w+\.py)::(\w+)", text):
        assert re.search(rf"^def {name}\(", (ROOT / file).read_text(), flags=re.M), f"{page.name}: {file}::{name}"


def test_no_reference_to_the_old_cards_is_left():
    old = re.compile("card" + r" C\.\d")  # split so that this file does not match itself
    left = [f"{path.relative_to(ROOT)}:{i}" for path in [*ROOT.glob("offrl/**/*.py"), *ROOT.glob("tests/*.py"),
                                                         *ROOT.glob("conf/**/*.yaml")]
            for i, line in enumerate(path.read_text().splitlines(), 1) if old.search(line)]
    assert not left, left
