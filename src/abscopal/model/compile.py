"""Generate, cache and load compiled kernels for a :class:`~abscopal.model.spec.ModelSpec`.

From a spec we generate the source of one Python module: the right-hand side, its analytic
Jacobian (sympy), the jump maps of the events, the initial state and the observables, followed
by the numba integrator of :mod:`abscopal.model._integrator_template`. The module is written
(atomically) to a cache directory under a name that contains the model's content hash, so

* numba's on-disk cache (``cache=True``) makes a later process start warm;
* worker processes (Dask, multiprocessing) import the file instead of unpickling closures:
  a :class:`CompiledModel` pickles as ``(spec, path)`` and re-imports on arrival.

The cache directory is ``$ABSCOPAL_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/abscopal`` or
``~/.cache/abscopal``; each is passed explicitly, never stored in global state.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import sympy as sp
from sympy.functions.elementary.piecewise import ExprCondPair
from sympy.printing.pycode import PythonCodePrinter

from .._version import __version__
from .spec import TIME, ModelSpec, sym

__all__ = ["CompiledModel", "compile_model", "default_cache_dir", "generate_source"]

_CODEGEN_VERSION = "5"
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


def _block(
    printer: _Printer, exprs: list[sp.Expr], targets: list[str], indent: str = "    "
) -> list[str]:
    """Lines assigning ``targets[i] = exprs[i]`` with common subexpressions hoisted."""
    replacements, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("c_"), optimizations="basic")
    lines = [f"{indent}{printer.doprint(v)} = {printer.doprint(e)}" for v, e in replacements]
    lines += [f"{indent}{tgt} = {printer.doprint(e)}" for tgt, e in zip(targets, reduced, strict=True)]
    return lines


def generate_source(spec: ModelSpec) -> str:
    """Return the Python/numba source of the kernel module of ``spec``.

    The module defines ``rhs(t, y, p, dy)``, ``jac(t, y, p, J)``, ``jump(k, t, y, p, a)``,
    ``initial(p, y)``, ``observe(t, y, p, out)``, the constants ``N_STATES``, ``N_PARAMS``,
    ``N_OBS``, ``MODEL_HASH`` and the integrator functions ``solve_batch``,
    ``solve_batch_serial`` and ``observe_batch``.
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
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a cache may be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _import_file(module_name: str, path: Path) -> ModuleType:
    existing = sys.modules.get(module_name)
    if existing is not None and getattr(existing, "__file__", None) == str(path):
        return existing
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
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
        The imported module (numba dispatchers ``rhs``, ``jac``, ``jump``, ``solve_batch``...).
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

    # convenient single-patient Python entry points (used by the stiff fallback and tests)
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
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    safe = "".join(c if c.isalnum() else "_" for c in spec.name)[:40]
    module_name = f"abscopal_kernel_{safe}_{key}"
    path = directory / "kernels" / f"{module_name}.py"
    if not path.exists():
        _write_atomic(path, generate_source(spec))
    module = _import_file(module_name, path)
    return CompiledModel(spec=spec, key=key, path=path, module=module)
