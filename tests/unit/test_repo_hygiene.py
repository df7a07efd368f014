"""The repository stands alone: nothing cites or reads files outside it, and the install is pinned.

A fresh clone on another machine has nothing beside the repo, so no code, test, doc, notebook or target file may
point at ``../shared`` or at the project's private reference notes (they cite the publications instead), and
``scripts/setup.sh`` installs the versions pinned in ``requirements/constraints.txt``.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("src", "tests", "docs", "notebooks", "benchmarks", "fits", "scenarios", "studies", "scripts", "README.md")
SUFFIXES = {".py", ".md", ".toml", ".ipynb", ".sh", ".txt", ".json", ".cfg"}
FORBIDDEN = re.compile(
    r"shared/(reference|design)|\.\./shared|clinical-targets|published-models|model-v2-sources|"
    r"peer-tools\.md|000_5f902fdaf3dea0f7"
)


def _files() -> list[Path]:
    out = []
    for name in SCANNED:
        path = ROOT / name
        out += [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES]
    return [p for p in out if "__pycache__" not in p.parts]


def _hits(path: Path, root: Path = ROOT) -> list[tuple[str, str]]:
    text = path.read_text(encoding="utf-8", errors="replace")
    rel = path.relative_to(root).as_posix()
    return [(rel, line.strip()) for line in text.splitlines() if FORBIDDEN.search(line)]


def test_nothing_points_outside_the_repository():
    files = _files()
    assert len(files) > 100 and ROOT / "README.md" in files  # the scan really covers the repo
    hits = {hit for path in files if path != Path(__file__) for hit in _hits(path)}
    assert hits == set()


def test_the_scan_finds_planted_pointers(tmp_path):
    planted = tmp_path / "doc.md"
    planted.write_text(
        "fine\nsee ../shared/reference/models/Kosinsky2018.xml\n(clinical-targets.md 4.2)\n", encoding="utf-8"
    )
    assert _hits(planted, tmp_path) == [
        ("doc.md", "see ../shared/reference/models/Kosinsky2018.xml"),
        ("doc.md", "(clinical-targets.md 4.2)"),
    ]


def test_the_kosinsky_reference_model_ships_with_the_tests():
    data = ROOT / "tests" / "data" / "kosinsky2018"
    assert (data / "Kosinsky2018.xml").stat().st_size > 10_000 and (data / "Kosinsky2018.sedml").is_file()
    readme = (data / "README.md").read_text(encoding="utf-8")
    assert "BIOMD0000000863" in readme and "CC0" in readme and "10.1186/s40425-018-0327-9" in readme


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_setup_installs_pinned_versions_of_every_dependency():
    setup = (ROOT / "scripts" / "setup.sh").read_text(encoding="utf-8")
    assert '-c requirements/constraints.txt -e ".[test,lint]"' in setup
    lines = [
        ln
        for ln in (ROOT / "requirements" / "constraints.txt").read_text(encoding="utf-8").splitlines()
        if ln and not ln.startswith("#")
    ]
    pins = {}
    for ln in lines:
        name, sep, version = ln.partition("==")
        assert sep and version, f"not an exact pin: {ln!r}"
        pins[_norm(name)] = version
    assert "abscopal" not in pins  # the package itself is installed from the working tree
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    wanted = [*project["dependencies"], *extras["test"], *extras["lint"]]
    names = {_norm(re.split(r"[\[<>=!~ ;]", req, maxsplit=1)[0]) for req in wanted}
    assert names - set(pins) == set()
