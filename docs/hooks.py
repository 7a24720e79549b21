"""mkdocs hook: tables generated from the code, so the algorithm pages cannot drift from it.

    <!-- config-table: offrl.agents.sac.SACConfig -->   every field of a config dataclass: name, type, default, the
                                                        values it admits (its range rule, offrl.core.config) and
                                                        meaning (the field's trailing ``# comment`` in the source;
                                                        inherited fields included, marked with their class)
    <!-- tuning-table: prdc -->                         the per-dataset overrides in conf/tuning/prdc_<dataset>.yaml

A field without a comment, or a marker naming something that does not exist, stops the build.
"""

from __future__ import annotations

import ast
import dataclasses
import html
import importlib
import inspect
import io
import re
import textwrap
import tokenize
from functools import cache
from pathlib import Path
from typing import Any

import yaml

try:  # mkdocs prints a PluginError as one line and stops the build; tests import this file without mkdocs
    from mkdocs.exceptions import PluginError as _Failure
except ImportError:
    _Failure = Exception

ROOT = Path(__file__).resolve().parent.parent
CONFIG_MARKER = re.compile(r"<!--\s*config-table:\s*([\w.]+)\s*-->")
TUNING_MARKER = re.compile(r"<!--\s*tuning-table:\s*(\w+)\s*-->")


class DocsError(_Failure):
    """A marker the hook cannot render (mkdocs reports it and stops the build)."""


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    markdown = CONFIG_MARKER.sub(lambda m: config_table(m.group(1)), markdown)
    return TUNING_MARKER.sub(lambda m: tuning_table(m.group(1)), markdown)


# ---------------------------------------------------------------------- config dataclasses
def config_class(dotted: str) -> type:
    module, _, name = dotted.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as e:
        raise DocsError(f"config-table: cannot import {dotted}: {e}") from e
    if not dataclasses.is_dataclass(cls):
        raise DocsError(f"config-table: {dotted} is not a dataclass")
    return cls


@cache
def field_comments(cls: type) -> dict[str, str]:
    """{field: trailing comment} for the fields declared in ``cls``'s own body (a comment on any line of the
    field's statement, so a ``field(...)`` spread over lines works too)."""
    source = textwrap.dedent(inspect.getsource(cls))
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT and tok.line.strip() != tok.string:  # trailing, not a line of its own
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    body = ast.parse(source).body[0].body
    found = {}
    for node in body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            lines = [comments[i] for i in range(node.lineno, node.end_lineno + 1) if i in comments]
            if lines:
                found[node.target.id] = " ".join(lines)
    return found


def declared_in(cls: type, name: str) -> list[type]:
    """The dataclasses of ``cls``'s MRO whose own body declares field ``name``, most derived first."""
    return [c for c in cls.__mro__ if name in c.__dict__.get("__annotations__", {})]


def meaning(cls: type, field: dataclasses.Field) -> str:
    """The comment of the class that first declares the field; a subclass that declares it again with a comment of
    its own (usually why its default differs) adds that as "here: ..."."""
    for key in ("doc", "help"):
        if field.metadata.get(key):
            return str(field.metadata[key])
    comments = [field_comments(c)[field.name] for c in declared_in(cls, field.name) if field.name in field_comments(c)]
    if len(comments) > 1 and comments[0] != comments[-1]:
        return f"{comments[-1]}; here: {comments[0]}"
    if comments:
        return comments[0]
    raise DocsError(f"{cls.__module__}.{cls.__qualname__}.{field.name} has no trailing '# comment' saying what it "
                    "means: add one in the source (the docs' config tables are built from these comments)")


def default_of(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def as_yaml(value: Any) -> str:
    """A default as it is written on the command line (``agent.key=value``)."""
    if value is dataclasses.MISSING:
        return "(required)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(as_yaml(v) for v in value) + "]"
    if isinstance(value, float) and 0 < abs(value) < 1e-3:  # 3e-4, not 0.0003
        mantissa, exponent = f"{value:e}".split("e")
        return f"{float(mantissa):g}e{int(exponent)}"
    return str(value)


def admits(field: dataclasses.Field) -> str:
    """The values the field's range rule admits (``offrl.core.config``: Range, Each, OneOf); "" without a rule."""
    rule, kind = field.metadata.get("rule"), str(field.type)
    integer = "int" in kind and "float" not in kind
    if hasattr(rule, "options"):
        text = "one of " + ", ".join(rule.options)
    elif hasattr(rule, "item"):
        text = "a non-empty list, each " + rule.item.describe(integer)
    elif hasattr(rule, "describe"):
        text = rule.describe(integer)
    else:
        return ""
    return text + (", or null" if "None" in kind else "")


def cell(text: str) -> str:
    """Text for a table cell: no raw HTML, no column breaks."""
    return html.escape(text, quote=False).replace("|", "\\|")


def code(text: str) -> str:
    """Code in a table cell (a backslash-escaped pipe would show inside a code span)."""
    return "<code>" + html.escape(text, quote=False).replace("|", "&#124;") + "</code>"


def config_table(dotted: str) -> str:
    cls = config_class(dotted)
    rows = ["| field | type | default | values | meaning |", "|---|---|---|---|---|"]
    for field in dataclasses.fields(cls):
        owners = declared_in(cls, field.name)
        name = f"`{field.name}`"
        if owners[0] is not cls:
            name += f"<br>*from `{owners[0].__name__}`*"
        elif len(owners) > 1:
            name += f"<br>*default set here, declared in `{owners[-1].__name__}`*"
        kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
        rows.append(f"| {name} | {code(kind)} | {code(as_yaml(default_of(field)))} | {cell(admits(field))} | "
                    f"{cell(meaning(cls, field))} |")
    return "\n".join(rows)


# ---------------------------------------------------------------------- per-dataset tuning (conf/tuning)
def flatten(tree: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in tree.items():
        if isinstance(value, dict):
            out += flatten(value, f"{prefix}{key}.")
        else:
            out.append(f"`{prefix}{key}={as_yaml(value)}`")
    return out


def tuning_table(agent: str) -> str:
    """One row per distinct set of overrides, with the datasets it applies to and the file's own comment."""
    groups: dict[tuple[str, str], list[str]] = {}
    for path in sorted((ROOT / "conf" / "tuning").glob(f"{agent}_*.yaml")):
        text = path.read_text()
        note = " ".join(line.lstrip("#").strip() for line in text.splitlines()
                        if line.startswith("#") and "@package" not in line)
        note = re.sub(r"\s*See docs/algorithms/\S+", "", note)  # the file's pointer to the page showing it
        overrides = ", ".join(flatten(yaml.safe_load(text) or {}))
        groups.setdefault((overrides, note), []).append(path.stem.removeprefix(f"{agent}_"))
    if not groups:
        return (f"No per-dataset overrides: `conf/tuning/` has no `{agent}_<dataset>.yaml`, so the defaults above "
                "apply to every dataset.")
    rows = ["| datasets | overrides | source |", "|---|---|---|"]
    rows += [f"| {', '.join(f'`{d}`' for d in datasets)} | {cell(overrides)} | {cell(note)} |"
             for (overrides, note), datasets in groups.items()]
    return "\n".join(rows)
