"""The import graph of ``abscopal``: no cycles, calibration on top of the fitted values, printing only in the CLI.

Every module under ``src/abscopal`` is parsed with :mod:`ast`; nothing is imported. Every import statement counts,
wherever it is: at module level, inside a function or method, under ``if TYPE_CHECKING:``, absolute
(``import abscopal.x``, ``from abscopal.x import y``) or relative (``from ..x import y``, ``from . import x``).
An edge ``A -> B`` means that module A names module B:

* ``import abscopal.x.y`` -> ``abscopal.x.y``;
* ``from P import n`` -> ``P.n`` if that is a module (a submodule imported by name, e.g. ``from . import run``),
  else ``P`` (a name defined in P, or re-exported by the ``__init__`` of package P).

Importing ``abscopal.a.b`` also runs ``abscopal/__init__.py`` and ``abscopal/a/__init__.py``; Python does that for
every import, so these implicit parent-package imports are not edges. A package ``abscopal.a`` is the node of its
``__init__.py``.

The rules:

1. **Modules**: the module graph has no cycle (a failure names every strongly connected component and one cycle
   through it, in import order).
2. **Packages**: for every package P, its direct children form an acyclic graph, where each submodule is a node
   and each subpackage is one node (all its modules merged). Two kinds of edge are left out at this level, and only
   there: edges *from* P's own ``__init__`` (a package ``__init__`` re-exporting its submodules is fine: it sits
   above its children, not beside them) and edges *to* P's ``__init__`` from inside P (that is P itself; a cycle
   through it is a module cycle, caught by rule 1). So two children of a package may not depend on each other
   both ways, even through different modules (``abscopal.model`` -> ``abscopal.population`` -> ``abscopal.model``
   is a cycle), while ``abscopal/__init__.py`` may import everything.
3. **Layers**: ``abscopal.scenario``, ``abscopal.trials``, ``abscopal.fitted.*``, ``abscopal.arms``,
   ``abscopal.endpoints.*``, ``abscopal.studies.*`` and ``abscopal.diagnose`` import nothing from
   ``abscopal.calibrate`` (running and scoring trials uses a fit; fitting one builds on them; the model card
   measures a fit). More generally, no module imports from a floor above its
   own (:data:`LAYERS`: ground < endpoints < trials < fitted < arms < reports < calibrate, diagnose, scenario,
   studies < cli).
4. **Printing**: no ``print(...)`` call outside ``abscopal.cli``; library modules return data and text.

The planted tests show that each check can fail: a synthetic graph with cycles; a synthetic package whose only
module cycle goes through an import inside a function and a ``from .. import x`` under ``TYPE_CHECKING``; one
whose only cycle is between two of its subpackages, through different modules; a planted ``print``.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "abscopal"
CALIBRATE = "abscopal.calibrate"
BELOW_CALIBRATION = (
    "abscopal.scenario",
    "abscopal.trials",
    "abscopal.fitted",
    "abscopal.arms",
    "abscopal.endpoints",
    "abscopal.studies",
    "abscopal.diagnose",
)
LAYERS = (
    ("abscopal.endpoints",),
    ("abscopal.trials",),
    ("abscopal.fitted",),
    ("abscopal.arms",),
    ("abscopal.plot", "abscopal.templates"),
    ("abscopal.calibrate", "abscopal.diagnose", "abscopal.scenario", "abscopal.studies"),
    ("abscopal.cli",),
)
"""The floors above the ground floor (model, treatment, patients, simulate, solver, io, export, sbml, ...), lowest first
(docs/design.md). A module imports only from its own floor or the floors below; ``abscopal/__init__.py`` (the
public API) and ``abscopal.__main__`` sit on top."""
TOP = ("abscopal", "abscopal.__main__")
PRINTING_ALLOWED = "abscopal.cli"

Graph = Mapping[str, set[str]]


# ---- parsing ----------------------------------------------------------------------------------------------------
def modules(root: Path, package: str = PACKAGE) -> dict[str, tuple[Path, bool]]:
    """``{dotted name: (file, is a package __init__)}`` of every ``.py`` file of ``root/package``."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return out


def _known(name: str, known: Iterable[str]) -> str | None:
    """``name`` or its longest prefix that is a known module (None outside the package)."""
    known = set(known)
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, path: Path, is_package: bool, known: Iterable[str], package: str = PACKAGE) -> set[str]:
    """The modules of ``package`` that ``module`` names in any import statement (module docstring)."""
    known = set(known)
    here = module if is_package else module.rpartition(".")[0]  # the package relative imports start from
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == package and (target := _known(alias.name, known)):
                    out.add(target)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")
                if node.level - 1 >= len(base):
                    raise AssertionError(f"{module}: relative import beyond the top package (level {node.level})")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != package:
                continue
            for alias in node.names:
                target = f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else _known(source, known)
                if target:
                    out.add(target)
    out.discard(module)
    return out


def module_graph(root: Path = SRC, package: str = PACKAGE) -> dict[str, set[str]]:
    """``{module: modules it imports}`` of every module of ``package`` under ``root``."""
    mods = modules(root, package)
    return {m: imports_of(m, path, is_pkg, mods, package) for m, (path, is_pkg) in mods.items()}


def package_graphs(graph: Graph) -> dict[str, dict[str, set[str]]]:
    """For every package P of ``graph``: the graph of P's direct children (rule 2 of the module docstring)."""
    packages = {m for m in graph if any(o.startswith(m + ".") for o in graph)}
    out: dict[str, dict[str, set[str]]] = {}
    for pkg in sorted(packages):
        depth = pkg.count(".") + 1

        def child(m: str, pkg: str = pkg, depth: int = depth) -> str | None:
            return ".".join(m.split(".")[: depth + 1]) if m.startswith(pkg + ".") else None

        nodes = {c for m in graph if (c := child(m))}
        edges: dict[str, set[str]] = {n: set() for n in nodes}
        for m, targets in graph.items():
            a = child(m)
            if a is None:  # outside P, or P's own __init__
                continue
            for t in targets:
                b = child(t)
                if b is not None and b != a:
                    edges[a].add(b)
        out[pkg] = edges
    return out


def print_calls(path: Path) -> list[int]:
    """Line numbers of the ``print(...)`` calls in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [
        n.lineno
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and (
            (isinstance(n.func, ast.Name) and n.func.id == "print")
            or (
                isinstance(n.func, ast.Attribute)
                and n.func.attr == "print"
                and getattr(n.func.value, "id", None) == "builtins"
            )
        )
    ]


# ---- cycles -----------------------------------------------------------------------------------------------------
def strongly_connected(graph: Graph) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted, in sorted order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    nodes = sorted(set(graph) | {t for ts in graph.values() for t in ts})
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, successors = work[-1]
            w = next(successors, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def cycle_in(graph: Graph, component: list[str]) -> list[str]:
    """The shortest cycle through the first node of ``component`` (a strongly connected component of ``graph``),
    as ``[a, b, ..., a]``."""
    members, start = set(component), component[0]
    parent: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:  # breadth first from start, back to start
        v = queue.popleft()
        for w in sorted(graph.get(v, ())):
            if w == start:
                path = [v]
                while (up := parent[path[-1]]) is not None:
                    path.append(up)
                return [*reversed(path), start]
            if w in members and w not in parent:
                parent[w] = v
                queue.append(w)
    raise AssertionError(f"{component} is not strongly connected")


def cycle_report(graph: Graph) -> list[str]:
    """One line per strongly connected component: its members and one cycle (empty if the graph is acyclic)."""
    return [
        f"{', '.join(c)} depend on each other; a cycle: {' -> '.join(cycle_in(graph, c))}"
        for c in strongly_connected(graph)
    ]


# ---- the package --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return module_graph()


def test_the_graph_covers_the_package(graph):
    assert len(graph) > 50
    assert "abscopal.fitted.format" in graph["abscopal.calibrate.fit"]  # a module-level relative import
    assert "abscopal.calibrate.report" in graph["abscopal.cli.fit"]  # imports inside functions count
    assert "abscopal.cli.info" in graph["abscopal.cli"]  # from .info import ... in an __init__
    assert "abscopal.cli" in graph["abscopal.cli.__main__"]  # from . import main: a name of the __init__


def test_no_module_cycle(graph):
    assert cycle_report(graph) == []


def test_no_package_cycle(graph):
    report = {pkg: cycle_report(children) for pkg, children in package_graphs(graph).items()}
    assert {pkg: r for pkg, r in report.items() if r} == {}


@pytest.mark.parametrize("layer", BELOW_CALIBRATION)
def test_below_calibration_nothing_imports_calibrate(graph, layer):
    offending = {
        m: sorted(t for t in targets if t == CALIBRATE or t.startswith(CALIBRATE + "."))
        for m, targets in graph.items()
        if m == layer or m.startswith(layer + ".")
    }
    assert any(m == layer or m.startswith(layer + ".") for m in graph), f"{layer} not found"
    assert {m: t for m, t in offending.items() if t} == {}


def test_only_the_cli_prints():
    found = {
        name: lines
        for name, (path, _) in modules(SRC).items()
        if not (name == PRINTING_ALLOWED or name.startswith(PRINTING_ALLOWED + ".")) and (lines := print_calls(path))
    }
    assert found == {}


# ---- the checks can fail ------------------------------------------------------------------------------------------
def test_a_planted_cycle_is_found_and_reported():
    planted = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"a"}, "x": {"y"}, "y": {"x"}}
    assert strongly_connected(planted) == [["a", "b", "c"], ["x", "y"]]
    assert cycle_in(planted, ["a", "b", "c"]) == ["a", "b", "c", "a"]
    assert cycle_report(planted) == [
        "a, b, c depend on each other; a cycle: a -> b -> c -> a",
        "x, y depend on each other; a cycle: x -> y -> x",
    ]
    assert cycle_report({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def _write(root: Path, files: Mapping[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_a_planted_package_cycle_through_a_function_level_import_is_found(tmp_path):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "from .low import f\n",  # re-exports: no cycle by itself
            "pkg/low.py": "def f():\n    from .sub import helper  # inside a function: counts\n    return helper\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/helper.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .. import low\n",
            "pkg/mid.py": "import pkg.low\nfrom pkg import sub\n",
        },
    )
    g = module_graph(tmp_path, "pkg")
    assert g == {
        "pkg": {"pkg.low"},
        "pkg.low": {"pkg.sub.helper"},
        "pkg.mid": {"pkg.low", "pkg.sub"},
        "pkg.sub": set(),
        "pkg.sub.helper": {"pkg.low"},
    }
    assert cycle_report(g) == [
        "pkg.low, pkg.sub.helper depend on each other; a cycle: pkg.low -> pkg.sub.helper -> pkg.low"
    ]
    packages = package_graphs(g)
    assert packages["pkg"] == {"pkg.low": {"pkg.sub"}, "pkg.mid": {"pkg.low", "pkg.sub"}, "pkg.sub": {"pkg.low"}}
    assert cycle_report(packages["pkg"]) == [
        "pkg.low, pkg.sub depend on each other; a cycle: pkg.low -> pkg.sub -> pkg.low"
    ]


def test_a_package_cycle_between_different_modules_is_found_and_init_reexports_are_not(tmp_path):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "from .a.one import x\nfrom .b import y\n",  # the __init__ re-exports: fine
            "pkg/a/__init__.py": "from .one import x\nfrom .two import z\n",
            "pkg/a/one.py": "from ..b import y\n",  # a -> b
            "pkg/a/two.py": "z = 1\n",
            "pkg/b.py": "def y():\n    from .a.two import z\n    return z\n",  # b -> a: no module cycle
        },
    )
    g = module_graph(tmp_path, "pkg")
    assert cycle_report(g) == []
    assert cycle_report(package_graphs(g)["pkg"]) == [
        "pkg.a, pkg.b depend on each other; a cycle: pkg.a -> pkg.b -> pkg.a"
    ]
    assert cycle_report(package_graphs(g)["pkg.a"]) == []  # pkg/a/__init__ importing its children is no cycle


def test_a_planted_print_is_found(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("import builtins\ndef f():\n    print('x')\n    builtins.print('y')\n    log.info('z')\n")
    assert print_calls(path) == [3, 4]


def floor(module: str) -> int:
    """The floor of ``module`` in :data:`LAYERS` (0: the ground floor; ``len(LAYERS) + 1``: the public API)."""
    if module in TOP:
        return len(LAYERS) + 1
    for level, prefixes in enumerate(LAYERS, start=1):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return level
    return 0


def upward_imports(graph: Graph) -> dict[str, list[str]]:
    """``{module: the modules on higher floors it imports}`` (rule 3)."""
    out = {m: sorted(t for t in targets if floor(t) > floor(m)) for m, targets in graph.items()}
    return {m: t for m, t in out.items() if t}


def test_no_module_imports_from_a_higher_floor(graph):
    assert upward_imports(graph) == {}


def test_sbml_is_on_the_ground_floor(graph):
    """The SBML package reads and writes models: like ``export`` and ``io`` it sits on the ground floor."""
    sbml = [m for m in graph if m == "abscopal.sbml" or m.startswith("abscopal.sbml.")]
    assert sbml and all(floor(m) == 0 for m in sbml)
    assert all(floor(t) == 0 for m in sbml for t in graph[m])


def test_a_planted_upward_import_is_found():
    planted = {
        "abscopal.simulate": {"abscopal.arms"},
        "abscopal.arms": {"abscopal.simulate"},
        "abscopal": {"abscopal.cli"},
    }
    assert upward_imports(planted) == {"abscopal.simulate": ["abscopal.arms"]}
