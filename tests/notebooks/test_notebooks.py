"""The notebooks in ``notebooks/`` run top to bottom with small populations (issue 5, section 4).

Each notebook reads ``ABSCOPAL_NOTEBOOK_SMALL=1`` in its first code cell and then uses tiny populations. The
kernel is the ``python3`` kernelspec; jupyter_client replaces its ``python`` command by ``sys.executable``, so the
kernel runs in the interpreter (virtual environment) running pytest, and it imports abscopal from this
repository's ``src`` through ``PYTHONPATH``. Run: ``pytest -m notebooks``.

The fast checks (no marker) keep the committed notebooks free of outputs and, where jupytext is installed, equal
to their reviewable sources ``notebooks/src/*.py``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = ROOT / "notebooks"
NOTEBOOKS = (
    "01_quick_start.ipynb",
    "02_calibrate.ipynb",
    "03_timing_and_fractionation.ipynb",
    "04_your_own_model.ipynb",
    "05_mechanisms.ipynb",
    "06_sensitivity.ipynb",
)


def _read(name: str):
    nbformat = pytest.importorskip("nbformat")
    return nbformat.read(NOTEBOOKS_DIR / name, as_version=4)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_committed_without_outputs(name: str) -> None:
    nb = _read(name)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{name} has no code cells"
    assert "ABSCOPAL_NOTEBOOK_SMALL" in code[0].source, f"{name}: the first code cell must read the SMALL switch"
    for i, cell in enumerate(code):
        assert not cell.get("outputs"), f"{name}: code cell {i} has stored outputs; clear them before committing"
        assert cell.get("execution_count") is None, f"{name}: code cell {i} has an execution count"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_matches_its_jupytext_source(name: str) -> None:
    jupytext = pytest.importorskip("jupytext")
    nb = _read(name)
    src = jupytext.read(NOTEBOOKS_DIR / "src" / (Path(name).stem + ".py"))
    got = [(c.cell_type, c.source.strip()) for c in nb.cells]
    want = [(c.cell_type, c.source.strip()) for c in src.cells]
    assert got == want, (f"{name} differs from notebooks/src/{Path(name).stem}.py; regenerate it with "
                         f"jupytext --to ipynb notebooks/src/{Path(name).stem}.py -o notebooks/{name}")


@pytest.mark.notebooks
@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    nbclient = pytest.importorskip("nbclient")
    nb = _read(name)
    monkeypatch.setenv("ABSCOPAL_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    paths = [str(ROOT / "src"), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS_DIR)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError naming the cell on the first error
    elapsed = time.perf_counter() - start
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    print(f"{name}: {elapsed:.1f} s")
