"""Writing a study's outputs into its folder: a fresh hidden staging folder switched in by one atomic link rename,
and the refusal to write into a folder that is not a study's (the module docstring of :mod:`abscopal.studies.run`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import xarray as xr

from ..errors import AbscopalError
from ..io import OutputPathError, check_output_dir, write_netcdf

if TYPE_CHECKING:
    pass

from .assemble import summary_table
from .robustness import MANIFEST, STUDY_SUBFOLDER

__all__ = ["check_output_folder", "check_study_dir", "new_staging", "switch_outputs"]

log = logging.getLogger(__name__)


_OUTPUTS_LINK = "outputs"


_STAGING_PREFIX = ".outputs-"


def _output_names(report: bool) -> list[str]:
    names = ["endpoints.nc", "summary.csv"]
    if report:
        from .report import FIGURES

        names += [f"{n}.png" for n in FIGURES] + ["report.html"]
    return [*names, "study.json"]


def check_study_dir(out: Path, *, force: bool, inputs: Sequence[str | Path | None] = ()) -> None:
    """Every check of a study's output folder, before any work (see the module docstring)."""
    check_output_folder(
        out,
        force=force,
        inputs=inputs,
        what="study",
        manifest="study.json",
        names=_output_names(True),
        folders=("cells",),
        markers=(f"{STUDY_SUBFOLDER}/{MANIFEST}",),  # a sensitivity analysis written first (robustness module)
    )


def check_output_folder(
    out: Path,
    *,
    force: bool,
    inputs: Sequence[str | Path | None],
    what: str,
    manifest: str,
    names: Sequence[str],
    folders: Sequence[str] = (),
    markers: Sequence[str] = (),
) -> None:
    """The output-folder rules of a study, for any output written by :func:`switch_outputs` (studies and
    sensitivity analyses), before any work.

    ``out`` must be a folder that is new, empty or ``what``'s own (it holds ``manifest``, one of ``folders`` or
    one of ``markers``, paths relative to ``out``); a
    completed one (``manifest`` exists) is rewritten only with ``force``; ``outputs`` must be the outputs link,
    each of ``names`` a link or a regular file, each of ``folders`` a folder; no existing input may lie inside
    ``out``. Raises :class:`~abscopal.io.OutputPathError` or :class:`~abscopal.errors.AbscopalError`.
    """
    check_output_dir(out)
    if not out.exists():
        return
    entries = [p.name for p in out.iterdir()]
    own = (
        os.path.lexists(out / manifest)
        or any((out / f).is_dir() for f in folders)
        or any((out / m).is_file() for m in markers)
    )
    if entries and not own:
        shown = ", ".join(sorted(entries)[:5]) + (", ..." if len(entries) > 5 else "")
        marks = ", ".join([manifest, *(f"no {f}/" for f in folders)])
        raise OutputPathError(
            f"--out {str(out)!r} is a folder that holds other files ({shown}) and no {what} "
            f"(no {marks}); choose a new or empty folder"
        )
    if (out / manifest).exists() and not force:
        raise AbscopalError(
            f"{str(out)!r} holds a completed {what} ({manifest} exists); choose another --out or "
            "pass --force to rewrite its outputs"
        )
    link = out / _OUTPUTS_LINK
    if os.path.lexists(link) and not link.is_symlink():
        raise OutputPathError(f"--out {str(out)!r}: {str(link)!r} is not the {what}'s outputs link; move it away")
    for name in folders:
        p = out / name
        if os.path.lexists(p) and (p.is_symlink() or not p.is_dir()):
            raise OutputPathError(f"--out {str(out)!r}: {str(p)!r} is not a folder of {name}; move it away")
    for name in names:
        p = out / name
        if os.path.lexists(p) and not p.is_symlink() and not p.is_file():
            raise OutputPathError(
                f"--out {str(out)!r}: {str(p)!r} is not a regular file and cannot be replaced; move it away"
            )
    root = out.resolve()
    for i in inputs:
        if i is not None and os.path.exists(i) and root in Path(i).resolve().parents:
            raise OutputPathError(
                f"input {str(i)!r} is inside the {what} folder --out {str(out)!r}; keep inputs "
                "outside it (its outputs are rewritten)"
            )


def _clean_staging(out: Path) -> None:
    """Remove output folders and links left by an interrupted write (anything ``.outputs-*`` not in use)."""
    link = out / _OUTPUTS_LINK
    current = os.readlink(link) if link.is_symlink() else None
    for p in out.glob(f"{_STAGING_PREFIX}*"):
        if p.name == current:
            continue
        if p.is_symlink() or p.is_file():
            p.unlink()
        elif p.is_dir():
            shutil.rmtree(p)


def _replace_with_link(path: Path, target: str) -> None:
    if path.is_symlink() and os.readlink(path) == target:
        return
    tmp = path.with_name(f"{_STAGING_PREFIX}link-{uuid.uuid4().hex[:12]}")
    os.symlink(target, tmp)
    os.replace(tmp, path)


def _write_outputs(ds: xr.Dataset, out: Path, *, report: bool) -> None:
    """Write the study's outputs into a staging folder and switch ``OUT/outputs`` to it (module docstring)."""
    import csv
    import io

    from ..io import write_atomic

    staging = new_staging(out)
    try:
        write_netcdf(ds, staging / "endpoints.nc", force=True)
        rows = summary_table(ds)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        text = buf.getvalue()
        write_atomic(staging / "summary.csv", lambda tmp: tmp.write_text(text, encoding="utf-8"), force=True)
        outputs = ["endpoints.nc", "summary.csv"]
        if report:
            from .report import write_study_report
            from .robustness import read_robustness

            # a sensitivity output in OUT/sensitivity/ made for this study adds the robustness section
            robustness = read_robustness(out / STUDY_SUBFOLDER, json.loads(ds.attrs["provenance"]))
            outputs += [str(p.relative_to(staging)) for p in write_study_report(ds, rows, staging, robustness)]
        manifest = {
            "outputs": outputs,
            "elapsed_s": ds.attrs.get("elapsed_s"),
            "cells_computed": ds.attrs.get("cells_computed"),
            "cells_cached": ds.attrs.get("cells_cached"),
            "provenance": json.loads(ds.attrs["provenance"]),
        }
        body = json.dumps(manifest, indent=1, default=str) + "\n"
        write_atomic(staging / "study.json", lambda tmp: tmp.write_text(body, encoding="utf-8"), force=True)
        outputs.append("study.json")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    switch_outputs(out, staging, outputs, _output_names(True))


def new_staging(out: Path) -> Path:
    """A fresh hidden staging folder ``OUT/.outputs-<token>/`` for :func:`switch_outputs`."""
    staging = out / f"{_STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    return staging


def switch_outputs(out: Path, staging: Path, outputs: Sequence[str], names: Sequence[str]) -> None:
    """Switch the link ``OUT/outputs`` to the complete ``staging`` folder in one atomic rename and point the fixed
    links ``OUT/<name>`` at ``outputs/<name>`` (module docstring). ``outputs``: the files written, the manifest last;
    ``names``: every output name the folder may hold (links of those not written this time are removed)."""
    try:
        _replace_with_link(out / _OUTPUTS_LINK, staging.name)  # the switch: one atomic rename
    except OSError as exc:  # no symbolic links here (some Windows setups): move the files, the manifest last
        log.warning("cannot switch %s with a symbolic link (%s); moving the files one by one", out, exc)
        for name in outputs:
            os.replace(staging / name, out / name)
        shutil.rmtree(staging, ignore_errors=True)
        return
    for name in outputs:  # fixed links OUT/<name> -> outputs/<name> (an old output's plain files are replaced)
        _replace_with_link(out / name, f"{_OUTPUTS_LINK}/{name}")
    for name in names:  # links of outputs this run did not write (e.g. --no-report) would dangle
        p = out / name
        if name not in outputs and p.is_symlink() and os.readlink(p).startswith(f"{_OUTPUTS_LINK}/"):
            p.unlink()
        elif name not in outputs and p.is_file():
            p.unlink()  # a plain file of an older layout: it belongs to the replaced output
    _clean_staging(out)
