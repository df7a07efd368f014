"""The kernel cache is code we import (``kernels/*.py``) and pickles numba reads (``.nbi``, ``.nbc``): a planted,
stale or corrupt file is never run and the cache heals itself; a cache folder others can write to is not used;
two processes compiling the same kernel at once both work.

Every test compiles a one-state model (``dy/dt = -k y``) in its own temporary cache folder and calls only its
right-hand side, so each compile takes seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

from abscopal.errors import AbscopalError, AbscopalWarning
from abscopal.model import ModelSpec, Parameter, State, compile_model, sym

SRC = Path(__file__).resolve().parents[2] / "src"
GARBAGE = b"\x80\x05ABSCOPAL-TEST-GARBAGE, not a pickle"


def tiny_spec() -> ModelSpec:
    y, k = sym("y_cache"), sym("k_cache")
    return ModelSpec(
        name="test_kernel_cache_decay",
        description="dy/dt = -k y",
        states=(State(name="y_cache", units="1", long_name="decaying quantity", initial=1.0),),
        parameters=(Parameter(name="k_cache", units="1/day", default=0.5, lower=0.0, upper=10.0),),
        rates={"y_cache": -k * y},
    )


def _works(model) -> None:
    assert model.rhs(0.0, np.array([2.0]), np.array([3.0])).tolist() == [-6.0]


def _fresh(model) -> None:
    """Forget the imported kernel module, as a new process would."""
    sys.modules.pop(Path(model.path).stem, None)


def _private(tmp_path: Path) -> Path:
    d = tmp_path / "cache"
    d.mkdir(mode=0o700)
    return d


@pytest.fixture
def compiled(tmp_path):
    model = compile_model(tiny_spec(), cache_dir=_private(tmp_path))
    _works(model)  # numba compiles rhs and writes its cache files
    return model


def test_kernel_files_carry_a_header_and_live_in_a_private_folder(compiled):
    first = compiled.path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# abscopal-kernel ") and f"model={compiled.model_hash}" in first
    assert "sha256=" in first and "numba=" in first and "abscopal=" in first
    for d in (compiled.path.parent.parent, compiled.path.parent, compiled.path.parent / "__pycache__"):
        assert d.stat().st_mode & 0o077 == 0, d  # created 0700
    assert list((compiled.path.parent / "__pycache__").glob(f"{compiled.path.stem}.*.nbi"))
    assert not list(compiled.path.parent.rglob("*.pyc"))  # exactly the checked bytes run: no bytecode cache


@pytest.mark.parametrize("forge_header", [False, True])
def test_a_planted_kernel_is_not_executed_and_is_replaced(compiled, tmp_path, forge_header):
    marker = tmp_path / "marker"
    header = compiled.path.read_text(encoding="utf-8").splitlines()[0] + "\n" if forge_header else ""
    genuine = compiled.path.read_text(encoding="utf-8")
    payload = f"with open({str(marker)!r}, 'w') as f:\n    f.write('ran')\n"
    compiled.path.write_text(header + payload + genuine.split("\n", 1)[1], encoding="utf-8")
    _fresh(compiled)
    with pytest.warns(AbscopalWarning, match=r"was not imported: (no abscopal header|content does not match)"):
        again = compile_model(tiny_spec(), cache_dir=compiled.path.parent.parent)
    assert not marker.exists()
    assert again.path == compiled.path and again.path.read_text(encoding="utf-8") == genuine
    _works(again)


def test_a_stale_kernel_is_regenerated_silently(compiled):
    genuine = compiled.path.read_text(encoding="utf-8")
    head, body = genuine.split("\n", 1)
    stale = head.replace("abscopal=", "abscopal=0.0.0-old").replace("sha256=", "sha256=0")
    compiled.path.write_text(stale + "\n" + body.replace("def rhs(", "def rhs_old(") + "\n", encoding="utf-8")
    _fresh(compiled)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a version change is routine: no warning
        again = compile_model(tiny_spec(), cache_dir=compiled.path.parent.parent)
    assert again.path.read_text(encoding="utf-8") == genuine
    _works(again)


def test_a_kernel_of_a_version_before_headers_is_regenerated_silently(compiled):
    genuine = compiled.path.read_text(encoding="utf-8")
    compiled.path.write_text(genuine.split("\n", 1)[1].replace("def rhs(", "def rhs_old("), encoding="utf-8")
    _fresh(compiled)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = compile_model(tiny_spec(), cache_dir=compiled.path.parent.parent)
    assert again.path.read_text(encoding="utf-8") == genuine
    _works(again)


def test_a_truncated_kernel_is_regenerated(compiled):
    genuine = compiled.path.read_text(encoding="utf-8")
    compiled.path.write_text(genuine[: len(genuine) // 2], encoding="utf-8")
    _fresh(compiled)
    with pytest.warns(AbscopalWarning, match="content does not match its header"):
        again = compile_model(tiny_spec(), cache_dir=compiled.path.parent.parent)
    assert again.path.read_text(encoding="utf-8") == genuine
    _works(again)


def test_an_import_error_regenerates_once_then_names_the_cache(compiled, monkeypatch):
    import hashlib

    from abscopal.model import compile as compile_module

    genuine = compiled.path.read_text(encoding="utf-8")
    body = "raise ImportError('broken kernel')\n"  # a consistent header: passes the check, fails on import
    head = genuine.split("\n", 1)[0].rsplit("sha256=", 1)[0] + "sha256=" + hashlib.sha256(body.encode()).hexdigest()
    compiled.path.write_text(head + "\n" + body, encoding="utf-8")
    _fresh(compiled)
    again = compile_model(tiny_spec(), cache_dir=compiled.path.parent.parent)
    assert again.path.read_text(encoding="utf-8") == genuine
    _works(again)

    def broken(name, path, source):
        raise ImportError("cannot import")

    _fresh(again)
    monkeypatch.setattr(compile_module, "_import_file", broken)
    cache = compiled.path.parent.parent
    with pytest.raises(
        AbscopalError,
        match=rf"kernel '{compiled.path}' .*cannot be imported even after it was "
        rf"regenerated .*delete the cache folder '{cache}'",
    ):
        compile_model(tiny_spec(), cache_dir=cache)


@pytest.mark.parametrize("suffix", [".nbi", ".nbc"])
def test_garbage_numba_cache_files_are_deleted_and_recompiled(compiled, suffix):
    pycache = compiled.path.parent / "__pycache__"
    files = sorted(pycache.glob(f"{compiled.path.stem}.*{suffix}"))
    assert files
    for f in files:
        f.write_bytes(GARBAGE)
    _fresh(compiled)
    again = compile_model(tiny_spec(), cache_dir=compiled.path.parent.parent)
    with pytest.warns(AbscopalWarning, match=r"numba cache of kernel .* was unreadable .*compiling afresh"):
        _works(again)
    assert not [f.name for f in pycache.glob(f"{compiled.path.stem}.*") if GARBAGE in f.read_bytes()]
    _fresh(again)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # healed: the next process reads the rewritten cache quietly
        _works(compile_model(tiny_spec(), cache_dir=compiled.path.parent.parent))


def test_a_world_writable_cache_folder_is_not_trusted(tmp_path):
    shared = tmp_path / "shared"
    (shared / "kernels").mkdir(parents=True)
    os.chmod(shared, 0o777)
    with pytest.warns(
        AbscopalWarning,
        match=rf"kernel cache '{shared}' is writable by group or others.*private "
        "temporary folder",
    ):
        model = compile_model(tiny_spec(), cache_dir=shared)
    assert shared not in model.path.parents and not list((shared / "kernels").iterdir())
    assert model.path.parent.parent.stat().st_mode & 0o077 == 0
    _works(model)


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="needs root to chown")
def test_a_cache_folder_of_another_user_is_not_trusted(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, -1)
    with pytest.warns(AbscopalWarning, match="owned by another user"):
        model = compile_model(tiny_spec(), cache_dir=theirs)
    assert theirs not in model.path.parents
    _works(model)


def test_two_processes_compiling_the_same_kernel_at_once_both_work(tmp_path):
    cache = _private(tmp_path)
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import numpy as np
        from test_kernel_cache import tiny_spec
        from abscopal.model import compile_model
        m = compile_model(tiny_spec(), cache_dir={str(cache)!r})
        assert m.rhs(0.0, np.array([2.0]), np.array([3.0])).tolist() == [-6.0]
        print("ok", m.path)
    """)
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
        "PYTHONWARNINGS": "error::UserWarning",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0 and out.startswith("ok "), err[-2000:]
    assert len({out.split()[1] for out, _ in outs}) == 1
