"""The package's layers: every module imports only its own layer and the layers below it, there are no import
cycles, the library never imports the command line, and an import inside a function is kept only for an optional
or heavy third-party dependency (the list below says why each one is deferred). Read from the source: nothing is
imported. docs: docs/architecture.md (the Design page)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "offrl"

# Lowest first. A module may import modules of its own layer and of the layers before it.
LAYERS = [
    ("core", ("offrl.core",)),  # nets, policies, optimiser, errors, config, progress, checkpoints, run records
    ("envs", ("offrl.envs",)),  # gymnasium environments, wrappers, evaluation episodes
    ("data", ("offrl.data",)),  # readers, cache files, store, batch sources, windows, goals (reads, never builds)
    ("models", ("offrl.diffusion", "offrl.agents")),  # the diffusion block and the agents (agents may use diffusion)
    ("training", ("offrl.training",)),  # trainer, phases, learners, run assembly, seeds
    ("generation", ("offrl.generation",)),  # dataset recipes and generators (may train behaviour policies)
    ("tools", ("offrl.tools",)),  # evaluate, export, report, analysis, dynamics
    ("cli", ("offrl.cli",)),  # the command line: parsing and printing only
]
# Third-party modules imported inside functions, and why they wait until used.
DEFERRED = {
    "minari": "loads its storage backends at import time; only Minari datasets need it",
    "ogbench": "registers many environments and prints notices; only OGBench tasks need it",
    "gymnasium_robotics": "registers many environments; only PointMaze/AntMaze need it",
    "onnx": "optional (export extra)",
    "onnxruntime": "optional (export extra)",
    "onnxscript": "optional (export extra)",
    "imageio_ffmpeg": "optional (export extra): mp4 videos",
    "imageio": "videos only",
    "matplotlib": "figures only (reports, dataset analysis): ~0.5 s to import",
    "rliable": "reports only; pulls in arch, pandas and statsmodels",
    "scipy": "statistics of reports only (scipy.stats is slow to import)",
    "yaml": "reading a run's config.yaml in reports",
    "mujoco": "fixes its OpenGL backend from $MUJOCO_GL when first imported; offrl eval --video chooses it first",
    "gymnasium.envs.mujoco": "imports mujoco (see above)",
    "hydra": "offrl train only: composing configs (~0.3 s)",
    "omegaconf": "offrl train only",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    raise AssertionError(f"{module} belongs to no declared layer; add it to LAYERS (tests/test_layers.py)")


def imports(path: Path) -> list[tuple[str, bool, int]]:
    """(imported module, inside a function?, line) for every import of ``path``; relative imports resolved."""
    tree = ast.parse(path.read_text())
    nested: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            nested |= {id(n) for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))}
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, id(node) in nested, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            if base == "offrl" or base.startswith("offrl."):
                # ``from offrl.core import checkpoint`` imports the module offrl.core.checkpoint
                for alias in node.names:
                    candidate = f"{base}.{alias.name}"
                    known = (PACKAGE.parent / Path(*candidate.split("."))).with_suffix(".py").exists() or (
                        PACKAGE.parent / Path(*candidate.split(".")) / "__init__.py").exists()
                    out.append((candidate if known else base, id(node) in nested, node.lineno))
            else:
                out.append((base, id(node) in nested, node.lineno))
    return out


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
EDGES = {m: imports(p) for m, p in MODULES.items()}


def test_every_module_has_a_layer():
    for module in MODULES:
        if module != "offrl":
            layer_of(module)


def test_no_module_imports_a_later_layer():
    wrong = []
    for module, found in EDGES.items():
        if module == "offrl":
            continue
        for target, _, line in found:
            if target.startswith("offrl.") and layer_of(target) > layer_of(module):
                wrong.append(f"{MODULES[module].relative_to(PACKAGE.parent)}:{line} ({LAYERS[layer_of(module)][0]}) "
                             f"imports {target} ({LAYERS[layer_of(target)][0]})")
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def test_no_import_cycles():
    graph = {m: {t for t, _, _ in found if t in MODULES and t != m} for m, found in EDGES.items()}
    # a package's __init__ re-exporting its modules is not a cycle with them
    for module in graph:
        graph[module] = {t for t in graph[module] if not module.startswith(t + ".")}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, path: list[str]) -> bool:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle.extend(path[path.index(nxt):] + [node, nxt] if nxt in path else [node, nxt])
                return True
            if nxt not in state and visit(nxt, path + [node]):
                return True
        state[node] = 2
        return False

    for module in sorted(graph):
        if module not in state and visit(module, []):
            break
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_function_level_imports_are_only_deferred_dependencies():
    wrong = []
    for module, found in EDGES.items():
        for target, inside, line in found:
            if not inside:
                continue
            if not any(target == name or target.startswith(name + ".") for name in DEFERRED):
                wrong.append(f"{MODULES[module].relative_to(PACKAGE.parent)}:{line} imports {target} inside a function")
    assert not wrong, ("imports inside functions (move them to the top of the module, or, for a heavy optional "
                       "dependency, add it to DEFERRED with the reason):\n" + "\n".join(wrong))


@pytest.mark.parametrize("layer", [name for name, _ in LAYERS])
def test_layer_is_not_empty(layer):
    """Each declared layer holds code (a renamed package would otherwise escape the checks silently)."""
    index = [name for name, _ in LAYERS].index(layer)
    assert any(module != "offrl" and layer_of(module) == index for module in MODULES)


def test_every_package_is_installed():
    """pyproject.toml lists every package directory (a new layer or subpackage is not left out of a wheel)."""
    listed = re.search(r"^packages = \[(.*?)\]", (PACKAGE.parent / "pyproject.toml").read_text(), re.M | re.S)
    names = set(re.findall(r'"([\w.]+)"', listed.group(1)))
    packages = {module_name(p) for p in PACKAGE.rglob("__init__.py")}
    assert packages <= names, f"packages missing from pyproject.toml: {sorted(packages - names)}"
