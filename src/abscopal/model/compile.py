"""Generate, cache and load compiled kernels for a :class:`~abscopal.model.spec.ModelSpec`.

From a spec we generate the source of one Python module: the right-hand side, its analytic
Jacobian and time derivative (sympy), the jump maps of the events, the initial state and the observables, followed
by the numba integrator of :mod:`abscopal.model._integrator_template`. The module is written
(atomically) to a cache directory under a name that contains the model's content hash, so

* numba's on-disk cache (``cache=True``) makes a later process start warm;
* worker processes (Dask, multiprocessing) import the file instead of unpickling closures:
  a :class:`CompiledModel` pickles as ``(spec, path)`` and re-imports on arrival.

The cache directory is ``$ABSCOPAL_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/abscopal`` or
``~/.cache/abscopal``; each is passed explicitly, never stored in global state. Kernels live in its ``kernels/``
folder, numba's machine code in ``kernels/__pycache__`` (or under ``$NUMBA_CACHE_DIR``). To clear the cache, delete
that folder; it is rebuilt on the next run.

The cache is code we import, and numba's cache files (``.nbi``, ``.nbc``) are pickles, so it is trusted only if it
is private:

* the cache directory (created with mode 0700) and its ``kernels/`` folders must be owned by the current user and
  not writable by group or others; otherwise an :class:`~abscopal.errors.AbscopalWarning` says so and a fresh
  private temporary directory is used instead, one per process and untrusted folder (the fix: ``chmod go-w``
  the folder, or point ``ABSCOPAL_CACHE_DIR`` at a private one);
* a kernel file starts with a header line giving the kernel key, model content hash, abscopal, numba and code
  generator versions and the sha256 of the rest of the file. Before import the header must match what this
  installation would write and the body its hash; a stale kernel (other versions) is regenerated silently, a
  truncated, edited or planted one is regenerated with a warning, never imported. Regenerating costs one
  :func:`generate_source` (about 10-30 s for the NSCLC model), checking the header only a read and a hash;
* reading numba's cache files is guarded: if one is unreadable (corrupt, truncated, from elsewhere), the kernel's
  numba cache files are deleted with a warning and the function is compiled afresh. If the kernel cannot be
  imported even after it was regenerated, an :class:`~abscopal.errors.AbscopalError` names the file and the folder
  to delete.

Two processes compiling the same kernel at once both work: files are written atomically (same content), and numba
ignores cache entries whose source stamp no longer matches.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import sympy as sp
from sympy.functions.elementary.piecewise import ExprCondPair
from sympy.printing.pycode import PythonCodePrinter

from .._version import __version__
from ..errors import AbscopalError, AbscopalWarning
from .spec import TIME, ModelSpec, sym

__all__ = ["CompiledModel", "compile_model", "default_cache_dir", "generate_source"]

_CODEGEN_VERSION = "6"
_TEMPLATE_PATH = Path(__file__).with_name("_integrator_template.py")


def default_cache_dir() -> Path:
    """Directory where generated kernels are cached (see the module docstring)."""
    env = os.environ.get("ABSCOPAL_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "abscopal"


class _Printer(PythonCodePrinter):
    """Python printer whose output numba compiles (math functions, Heaviside, sign)."""

    def _print_Heaviside(self, expr: Any) -> str:
        arg = self._print(expr.args[0])
        return f"(1.0 if ({arg}) > 0 else (0.5 if ({arg}) == 0 else 0.0))"

    def _print_sign(self, expr: Any) -> str:
        arg = self._print(expr.args[0])
        return f"(1.0 if ({arg}) > 0 else (-1.0 if ({arg}) < 0 else 0.0))"

    def _print_Float(self, expr: Any) -> str:
        return repr(float(expr))

    def _print_Rational(self, expr: Any) -> str:
        return f"({float(expr.p)}/{float(expr.q)})"

    def _print_Integer(self, expr: Any) -> str:
        return repr(float(expr))

    def _print_Pow(self, expr: Any, rational: bool = False) -> str:
        base, exp = expr.args
        if exp.is_Integer:
            # integer powers stay integer so numba emits multiplications, not pow()
            b = self.parenthesize(base, sp.printing.precedence.PRECEDENCE["Pow"])
            return f"{b}**{int(exp)}" if exp > 0 else f"1.0/{b}**{-int(exp)}"
        if exp == sp.Rational(1, 3):
            return f"np.cbrt({self._print(base)})"
        return super()._print_Pow(expr, rational=rational)


class _Hoister:
    """Replace maximal parameter-only subexpressions by derived-parameter symbols ``d_k``.

    Such subexpressions are the same for the whole integration of one patient, so the generated
    ``extend`` computes them once per patient and the right-hand side, Jacobian, jumps and
    observables read them from the extended parameter vector.
    """

    def __init__(self, params: set[sp.Symbol]) -> None:
        self.params = params
        self.memo: dict[sp.Expr, sp.Symbol] = {}

    def _const(self, e: sp.Expr) -> bool:
        return (
            not e.is_Atom
            and e.free_symbols <= self.params
            and not isinstance(e, (sp.logic.boolalg.Boolean, ExprCondPair))
        )

    def _name(self, e: sp.Expr) -> sp.Symbol:
        if e not in self.memo:
            self.memo[e] = sp.Symbol(f"d_{len(self.memo)}", real=True)
        return self.memo[e]

    def __call__(self, e: sp.Expr) -> sp.Expr:
        if e.is_Atom:
            return e
        if self._const(e):
            return self._name(e)
        if isinstance(e, (sp.Add, sp.Mul)):
            const = [a for a in e.args if a.free_symbols <= self.params]
            rest = [self(a) for a in e.args if not a.free_symbols <= self.params]
            if len(const) > 1:
                const = [self._name(e.func(*const))]
            else:
                const = [self(a) for a in const]
            return e.func(*const, *rest)
        return e.func(*[self(a) for a in e.args])

    def derived(self) -> list[tuple[sp.Symbol, sp.Expr]]:
        """(symbol, parameter-only expression) in creation order."""
        return [(v, k) for k, v in self.memo.items()]


def _local_names(spec: ModelSpec) -> dict[sp.Symbol, sp.Symbol]:
    """Map model symbols onto collision-free local names (s_*, p_*, a_*)."""
    mapping = {sym(s.name): sp.Symbol(f"s_{s.name}", real=True) for s in spec.states}
    mapping.update({sym(p.name): sp.Symbol(f"p_{p.name}", real=True) for p in spec.all_parameters})
    for ev in spec.events:
        mapping.update({sym(a): sp.Symbol(f"a_{a}", real=True) for a in ev.argument_names})
    mapping[TIME] = sp.Symbol("t", real=True)
    return mapping


def _block(printer: _Printer, exprs: list[sp.Expr], targets: list[str], indent: str = "    ") -> list[str]:
    """Lines assigning ``targets[i] = exprs[i]`` with common subexpressions hoisted."""
    replacements, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("c_"), optimizations="basic")
    lines = [f"{indent}{printer.doprint(v)} = {printer.doprint(e)}" for v, e in replacements]
    lines += [f"{indent}{tgt} = {printer.doprint(e)}" for tgt, e in zip(targets, reduced, strict=True)]
    return lines


def _time_derivative_block(
    printer: _Printer, exprs: list[sp.Expr], t: sp.Symbol, targets: list[str]
) -> tuple[list[str], bool]:
    """Lines assigning ``targets[i] = d exprs[i] / dt`` (explicit time dependence), and whether any is nonzero.

    Forward-mode differentiation along the common subexpressions of ``exprs``: each subexpression ``c = e`` that
    depends on ``t`` gets ``dt_c = de/dt + sum_k de/dc_k dt_c_k``, so only small expressions are differentiated
    (differentiating the whole rates would double the code generation time of the NSCLC model). The Dirac deltas
    of switches (derivatives of ``Heaviside``) are dropped.
    """

    def diff(e: sp.Expr, x: sp.Symbol) -> sp.Expr:
        d = sp.diff(e, x)
        if d.has(sp.DiracDelta):
            d = d.replace(lambda a: isinstance(a, sp.DiracDelta), lambda a: sp.S.Zero)
        if d.has(sp.Derivative, sp.Subs):
            raise AbscopalError(f"{e} has no closed-form time derivative for the Rosenbrock solver")
        return d

    replacements, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("c_"), optimizations="basic")
    rate: dict[sp.Symbol, sp.Symbol] = {}  # subexpression -> symbol of its time derivative

    def d_dt(e: sp.Expr) -> sp.Expr:
        free = e.free_symbols
        terms = [diff(e, t)] if t in free else []
        terms += [diff(e, c) * rate[c] for c in free if c in rate]
        return sp.Add(*terms)

    lines = []
    for v, e in replacements:
        lines.append(f"    {printer.doprint(v)} = {printer.doprint(e)}")
        d = d_dt(e)
        if d != 0:
            rate[v] = sp.Symbol(f"dt_{v}", real=True)
            lines.append(f"    {rate[v]} = {printer.doprint(d)}")
    nonzero = False
    for tgt, e in zip(targets, reduced, strict=True):
        d = d_dt(e)
        if d != 0:
            nonzero = True
            lines.append(f"    {tgt} = {printer.doprint(d)}")
    return lines, nonzero


def generate_source(spec: ModelSpec) -> str:
    """Return the Python/numba source of the kernel module of ``spec``.

    The module defines ``rhs(t, y, p, dy)``, ``jac(t, y, p, J)``, ``dfdt(t, y, p, ft)`` (the explicit time
    derivative of the rates, for the Rosenbrock method), ``jump(k, t, y, p, a)``, ``initial(p, y)``,
    ``observe(t, y, p, out)``, the constants ``N_STATES``, ``N_PARAMS``, ``N_OBS``, ``TIME_DEPENDENT``,
    ``MODEL_HASH`` and the integrator functions ``solve_batch``, ``solve_batch_serial``, ``solve_batch_ros``,
    ``solve_batch_ros_serial``, ``solve_batch_auto``, ``solve_batch_auto_serial`` and ``observe_batch``.
    """
    pr = _Printer({"fully_qualified_modules": True, "allow_unknown_functions": False})
    names = _local_names(spec)
    x = [sym(s.name) for s in spec.states]
    rates = [spec.rates[s.name] for s in spec.states]
    jac = sp.Matrix(rates).jacobian(x)
    hoist = _Hoister({sym(p.name) for p in spec.all_parameters})
    n = len(spec.states)
    n_par = len(spec.all_parameters)

    def loc(e: sp.Expr, lift: bool = True) -> sp.Expr:
        e = sp.sympify(e)
        return (hoist(e) if lift else e).xreplace(names)

    rhs_exprs = [loc(r) for r in rates]
    nz = [(i, k) for i in range(n) for k in range(n) if jac[i, k] != 0]
    jac_exprs = [loc(jac[i, k]) for i, k in nz]
    jump_exprs = [[loc(ev.jumps[st]) for st in ev.jumps] for ev in spec.events]
    obs_exprs = [loc(o.expr) for o in spec.observables]
    derived = hoist.derived()
    dfdt_lines, time_dependent = _time_derivative_block(pr, rhs_exprs, names[TIME], [f"ft[{i}]" for i in range(n)])
    n_ext = n_par + len(derived)

    def unpack(states: bool = True, ext: bool = True) -> list[str]:
        lines = [f"    s_{st.name} = y[{i}]" for i, st in enumerate(spec.states)] if states else []
        lines += [f"    p_{p.name} = p[{i}]" for i, p in enumerate(spec.all_parameters)]
        if ext:
            lines += [f"    {v.name} = p[{n_par + i}]" for i, (v, _) in enumerate(derived)]
        return lines

    out = [
        f"# Generated by abscopal {__version__} (codegen {_CODEGEN_VERSION}) for model {spec.name!r}.",
        "# Do not edit: regenerated from the model spec whenever its content hash changes.",
        "# Every kernel takes the *extended* parameter vector p = [parameters, derived values];",
        "# extend(p0, p) fills it once per patient (parameter-only subexpressions hoisted).",
        "import math",
        "import numba as nb",
        "import numpy as np",
        "",
        f"MODEL_HASH = {spec.content_hash()!r}",
        f"N_STATES = {n}",
        f"N_PARAMS = {n_par}",
        f"N_EXT = {n_ext}",
        f"N_OBS = {len(spec.observables)}",
        f"TIME_DEPENDENT = {time_dependent}",
        "",
        "",
        "@nb.njit(cache=True)",
        "def extend(p0, p):",
        "    p[:N_PARAMS] = p0",
        *[f"    p_{q.name} = p0[{i}]" for i, q in enumerate(spec.all_parameters)],
    ]
    if derived:
        out += _block(pr, [e.xreplace(names) for _, e in derived], [v.name for v, _ in derived])
        out += [f"    p[{n_par + i}] = {v.name}" for i, (v, _) in enumerate(derived)]
    out += ["", "", "@nb.njit(cache=True)", "def rhs(t, y, p, dy):", *unpack()]
    out += _block(pr, rhs_exprs, [f"dy[{i}]" for i in range(n)])
    out += ["", "", "@nb.njit(cache=True)", "def jac(t, y, p, J):", *unpack(), "    J[:, :] = 0.0"]
    if nz:
        out += _block(pr, jac_exprs, [f"J[{i}, {k}]" for i, k in nz])
    out += ["", "", "@nb.njit(cache=True)", "def dfdt(t, y, p, ft):", *unpack(), "    ft[:] = 0.0"]
    out += dfdt_lines
    out += ["", "", "@nb.njit(cache=True)", "def jump(k, t, y, p, a):", *unpack()]
    if not spec.events:
        out += ["    return"]
    for idx, ev in enumerate(spec.events):
        out += [f"    {'if' if idx == 0 else 'elif'} k == {idx}:  # {ev.name}"]
        out += [f"        a_{arg} = a[{i}]" for i, arg in enumerate(ev.argument_names)]
        targets = list(ev.jumps)
        if targets:
            out += _block(pr, jump_exprs[idx], [f"n_{st}" for st in targets], "        ")
            out += [f"        y[{spec.state_names.index(st)}] = n_{st}" for st in targets]
        else:
            out += ["        pass"]
    out += ["", "", "@nb.njit(cache=True)", "def initial(p, y):", *unpack(states=False, ext=False)]
    out += _block(pr, [loc(st.initial, lift=False) for st in spec.states], [f"y[{i}]" for i in range(n)])
    out += ["", "", "@nb.njit(cache=True)", "def observe(t, y, p, out):", *unpack()]
    if spec.observables:
        out += _block(pr, obs_exprs, [f"out[{i}]" for i in range(len(spec.observables))])
    else:
        out += ["    return"]
    out += ["", ""]
    template = _TEMPLATE_PATH.read_text()
    body = template.split('"""', 2)[2]  # drop the template's module docstring
    return "\n".join(out) + "\n# ---- integrator (abscopal/model/_integrator_template.py) ----\n" + body


def _kernel_key(spec: ModelSpec) -> str:
    h = hashlib.sha256()
    h.update(spec.content_hash().encode())
    h.update(_CODEGEN_VERSION.encode())
    h.update(_TEMPLATE_PATH.read_bytes())
    return h.hexdigest()[:20]


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".py")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; readable, but only we may write
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ---- trusting the cache ---------------------------------------------------------------------------------------------
_HEADER = "# abscopal-kernel "
_FALLBACK: dict[str, Path] = {}  # untrusted cache dir -> this process's private temporary replacement


def _numba_version() -> str:
    try:
        return importlib.metadata.version("numba")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - numba is a dependency
        return "unknown"


def _header_fields(spec: ModelSpec, key: str) -> dict[str, str]:
    """What a kernel file's header must say for this installation (without the body hash)."""
    return {
        "key": key,
        "model": spec.content_hash(),
        "abscopal": __version__,
        "numba": _numba_version(),
        "codegen": _CODEGEN_VERSION,
    }


def _kernel_text(spec: ModelSpec, key: str) -> str:
    """The kernel file: header line (see the module docstring) + :func:`generate_source`."""
    body = generate_source(spec)
    fields = _header_fields(spec, key) | {"sha256": hashlib.sha256(body.encode("utf-8")).hexdigest()}
    return _HEADER + " ".join(f"{k}={v}" for k, v in fields.items()) + "\n" + body


def _regenerate(path: Path, spec: ModelSpec, key: str) -> bytes:
    """Write the kernel file of ``spec`` atomically; return its bytes."""
    text = _kernel_text(spec, key)
    _write_atomic(path, text)
    return text.encode("utf-8")


def _kernel_problem(path: Path, spec: ModelSpec, key: str) -> tuple[bytes, tuple[str, bool] | None]:
    """``(content, None)`` if ``path`` is a kernel this installation wrote for ``spec``; else ``(content,
    (reason, suspicious))``: ``suspicious`` is False for a missing or merely stale file (other versions), True for
    anything else."""
    raw = b""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return raw, ("missing", False)
    except OSError as exc:
        return raw, (f"unreadable ({exc})", True)
    return raw, _header_problem(path, raw, spec, key)


def _header_problem(path: Path, raw: bytes, spec: ModelSpec, key: str) -> tuple[str, bool] | None:
    """The check of :func:`_kernel_problem` on the file's bytes ``raw``."""
    first, sep, body = raw.partition(b"\n")
    try:
        line = first.decode("utf-8")
    except UnicodeDecodeError:
        return "no abscopal header", True
    if not sep or not line.startswith(_HEADER):
        # kernels of abscopal versions before the header are stale, not suspicious (nothing unchecked is imported)
        return "no abscopal header", not line.startswith("# Generated by abscopal ")
    fields = dict(item.partition("=")[::2] for item in line[len(_HEADER) :].split())
    expected = _header_fields(spec, key)
    if fields.get("key") != key or fields.get("model") != expected["model"]:
        return "header names another model", True
    stale = {k: fields.get(k) for k in ("abscopal", "numba", "codegen") if fields.get(k) != expected[k]}
    if stale:
        return f"written by another version ({stale})", False
    if fields.get("sha256") != hashlib.sha256(body).hexdigest():
        return "content does not match its header (truncated or edited)", True
    try:
        st = path.stat()
    except OSError as exc:  # pragma: no cover - raced with a deletion
        return f"unreadable ({exc})", True
    reason = _untrusted(st)
    return None if reason is None else (reason, True)


def _untrusted(st: os.stat_result) -> str | None:
    """Why a file/folder with this status must not be trusted (None: owned by us, not group/world-writable)."""
    if os.name != "posix":
        return None
    if st.st_uid != os.getuid():
        return f"owned by another user (uid {st.st_uid})"
    if st.st_mode & 0o022:
        return f"writable by group or others (mode {oct(st.st_mode & 0o777)})"
    return None


def _private_dir(path: Path) -> str | None:
    """Create ``path`` (mode 0700) if missing; return why it is not private (None if it is)."""
    try:
        if not path.is_dir():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.mkdir(mode=0o700, exist_ok=True)
        return _untrusted(path.stat())
    except OSError as exc:
        return f"not usable ({exc})"


def _trusted_cache_dir(directory: Path) -> Path:
    """``directory`` if it and its ``kernels/`` folders are private, else (with a warning) a private temporary
    directory of this process."""
    for d in (directory, directory / "kernels", directory / "kernels" / "__pycache__"):
        reason = _private_dir(d)
        if reason is not None:
            break
    else:
        return directory
    key = str(directory)
    if key not in _FALLBACK:
        _FALLBACK[key] = Path(tempfile.mkdtemp(prefix="abscopal-cache-"))
        warnings.warn(
            AbscopalWarning(
                f"kernel cache {str(d)!r} is {reason}: its files could run code, so it is not used; compiling in the "
                f"private temporary folder {str(_FALLBACK[key])!r} instead. Fix: 'chmod go-w' the folder (if it is "
                "yours and nobody else wrote to it), delete it, or set ABSCOPAL_CACHE_DIR to a private folder"
            ),
            stacklevel=3,
        )
    return _FALLBACK[key]


def _numba_cache_files(kernel: Path, module_name: str, cache_paths: set[str]) -> list[Path]:
    """numba's cache files (``.nbi`` index, ``.nbc`` data) of the kernel module in the given folders."""
    out = []
    for folder in {*cache_paths, str(kernel.parent / "__pycache__")}:
        d = Path(folder)
        if d.is_dir():
            out += [f for f in d.iterdir() if f.name.startswith(f"{module_name}.") and f.suffix in (".nbi", ".nbc")]
    return out


class _GuardedCache:
    """Wraps a numba dispatcher's on-disk cache: an unreadable entry (corrupt pickle, truncated file...) deletes the
    kernel's numba cache files with a warning and lets numba compile afresh; an untrusted numba cache folder (see
    the module docstring) is neither read nor written."""

    def __init__(self, inner: Any, kernel: Path, module_name: str) -> None:
        self._inner = inner
        self._kernel = kernel
        self._module_name = module_name
        folder = Path(inner.cache_path)
        self._distrust = _private_dir(folder) if folder.resolve() != (kernel.parent / "__pycache__").resolve() else None

    def load_overload(self, sig: Any, target_context: Any) -> Any:
        if self._distrust is not None:
            return None
        try:
            return self._inner.load_overload(sig, target_context)
        except Exception as exc:
            files = _numba_cache_files(self._kernel, self._module_name, {self._inner.cache_path})
            for f in files:
                f.unlink(missing_ok=True)
            warnings.warn(
                AbscopalWarning(
                    f"numba cache of kernel {str(self._kernel)!r} in {self._inner.cache_path!r} was unreadable "
                    f"({type(exc).__name__}: {str(exc)[:120]}); deleted its {len(files)} file(s), compiling afresh"
                ),
                stacklevel=2,
            )
            return None

    def save_overload(self, sig: Any, data: Any) -> None:
        if self._distrust is None:
            self._inner.save_overload(sig, data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _guard_numba_caches(module: ModuleType, path: Path, module_name: str) -> None:
    """Wrap the on-disk cache of every numba dispatcher of ``module`` in :class:`_GuardedCache`."""
    warned = False
    for obj in vars(module).values():
        inner = getattr(obj, "_cache", None)
        if (
            inner is None
            or not hasattr(inner, "load_overload")
            or isinstance(inner, _GuardedCache)
            or not hasattr(inner, "cache_path")
        ):
            continue
        guard = _GuardedCache(inner, path, module_name)
        if guard._distrust is not None and not warned:
            warned = True
            warnings.warn(
                AbscopalWarning(
                    f"numba cache folder {inner.cache_path!r} is {guard._distrust}: its pickles are not read; kernel "
                    f"{str(path)!r} is compiled in memory each run. Fix: 'chmod go-w' it or unset NUMBA_CACHE_DIR"
                ),
                stacklevel=3,
            )
        obj._cache = guard


def _import_file(module_name: str, path: Path, source: bytes) -> ModuleType:
    """Import ``source`` (the checked bytes of ``path``) as module ``module_name`` with ``__file__ = path``: exactly
    the bytes that were checked run, and no ``.pyc`` is read or written."""
    existing = sys.modules.get(module_name)
    if existing is not None and getattr(existing, "__file__", None) == str(path):
        return existing
    module = ModuleType(module_name)
    module.__file__ = str(path)
    sys.modules[module_name] = module
    try:
        exec(compile(source, str(path), "exec"), module.__dict__)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


@dataclass(frozen=True, eq=False)
class CompiledModel:
    """A model spec together with its imported kernel module.

    Attributes
    ----------
    spec
        The model specification.
    key
        Kernel key (model content hash + code generator version).
    path
        Path of the generated module.
    module
        The imported module (numba dispatchers ``rhs``, ``jac``, ``dfdt``, ``jump``, ``solve_batch``,
        ``solve_batch_ros``...).
    """

    spec: ModelSpec
    key: str
    path: Path
    module: ModuleType = field(repr=False)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_load, (self.spec, str(self.path)))

    @property
    def model_hash(self) -> str:
        """The model's content hash (see :meth:`ModelSpec.content_hash`)."""
        return self.spec.content_hash()

    # convenient single-patient Python entry points (used by the Radau reference path and tests)
    def extended(self, p: np.ndarray) -> np.ndarray:
        """Extended parameter vector (parameters + hoisted derived values) used by every kernel."""
        pe = np.empty(self.module.N_EXT)
        self.module.extend(np.asarray(p, float), pe)
        return pe

    def rhs(self, t: float, y: np.ndarray, p: np.ndarray) -> np.ndarray:
        """Evaluate the right-hand side (compiled)."""
        dy = np.empty(len(self.spec.states))
        self.module.rhs(float(t), np.asarray(y, float), self.extended(p), dy)
        return dy

    def jac(self, t: float, y: np.ndarray, p: np.ndarray) -> np.ndarray:
        """Evaluate the analytic Jacobian d(rhs)/dy (compiled)."""
        n = len(self.spec.states)
        J = np.empty((n, n))
        self.module.jac(float(t), np.asarray(y, float), self.extended(p), J)
        return J

    def initial(self, p: np.ndarray) -> np.ndarray:
        """Initial state for the parameter vector ``p``."""
        y = np.empty(len(self.spec.states))
        self.module.initial(self.extended(p), y)
        return y

    def jump(self, event: str, y: np.ndarray, p: np.ndarray, args: np.ndarray, t: float = 0.0) -> np.ndarray:
        """Apply the jump of ``event`` at time ``t`` to a copy of ``y`` and return it."""
        names = [e.name for e in self.spec.events]
        k = names.index(self.spec.event(event).name)
        y2 = np.array(y, float)
        a = np.zeros(max(1, max((len(e.arguments) for e in self.spec.events), default=1)))
        a[: len(args)] = args
        self.module.jump(k, float(t), y2, self.extended(p), a)
        return y2


def _load(spec: ModelSpec, path: str) -> CompiledModel:
    """Unpickle helper: import the generated file, regenerating it if it is missing."""
    return compile_model(spec, cache_dir=Path(path).parent.parent)  # <cache>/kernels/<module>.py


def compile_model(spec: ModelSpec, *, cache_dir: Path | str | None = None) -> CompiledModel:
    """Generate (if needed), cache and import the kernels of ``spec``.

    Parameters
    ----------
    spec
        The model.
    cache_dir
        Where generated modules live; default :func:`default_cache_dir`.

    Returns
    -------
    CompiledModel
        The kernels. numba compiles lazily on first call and caches machine code next to the
        generated file, so a second process starts warm.
    """
    if isinstance(spec, CompiledModel):
        return spec
    key = _kernel_key(spec)
    directory = _trusted_cache_dir(Path(cache_dir) if cache_dir is not None else default_cache_dir())
    safe = "".join(c if c.isalnum() else "_" for c in spec.name)[:40]
    module_name = f"abscopal_kernel_{safe}_{key}"
    path = directory / "kernels" / f"{module_name}.py"
    source, problem = _kernel_problem(path, spec, key)
    if problem is not None:
        reason, suspicious = problem
        if suspicious:
            warnings.warn(
                AbscopalWarning(f"kernel {str(path)!r} was not imported: {reason}; regenerating it"), stacklevel=2
            )
        source = _regenerate(path, spec, key)
        sys.modules.pop(module_name, None)
    try:
        module = _import_file(module_name, path, source)
    except Exception:
        sys.modules.pop(module_name, None)
        for f in _numba_cache_files(path, module_name, set()):
            f.unlink(missing_ok=True)
        source = _regenerate(path, spec, key)
        try:
            module = _import_file(module_name, path, source)
        except Exception as exc:
            sys.modules.pop(module_name, None)
            raise AbscopalError(
                f"kernel {str(path)!r} of model {spec.name!r} cannot be imported even after it was "
                f"regenerated ({type(exc).__name__}: {exc}); delete the cache folder "
                f"{str(directory)!r} (or set ABSCOPAL_CACHE_DIR to another folder) and retry"
            ) from exc
    _guard_numba_caches(module, path, module_name)
    return CompiledModel(spec=spec, key=key, path=path, module=module)
