"""sympy <-> SBML math.

* sympy -> SBML: :func:`l3_formula` prints an expression in libSBML's Level 3 infix syntax (``piecewise(...)``,
  ``min``/``max``, ``ln``, ``^``, ``&&``, ``time`` for :data:`abscopal.model.spec.TIME`; floats in positional
  notation, so libSBML reads back the same double), which :func:`to_ast` parses with ``libsbml.parseL3Formula``.
* SBML -> sympy: :func:`from_ast` walks libSBML's parsed MathML tree node by node and builds the sympy expression
  from a fixed table of operators; nothing is evaluated as code (``eval``), so a file from someone else can only
  produce arithmetic on the names the model declares. Calls of SBML function definitions are inlined.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

import numpy as np
import sympy as sp
from sympy.printing.precedence import precedence
from sympy.printing.str import StrPrinter

from ..errors import ModelError
from ..model.spec import TIME

__all__ = ["from_ast", "l3_formula", "to_ast"]

AVOGADRO = 6.02214076e23


def _number(x: float) -> str:
    """A float as positional decimal text (read back exactly by libSBML's strtod), e-notation when huge or tiny."""
    x = float(x)
    if not np.isfinite(x):
        return "INF" if x > 0 else ("-INF" if x < 0 else "NaN")
    if x != 0 and not (1e-30 < abs(x) < 1e30):
        return repr(x)
    return np.format_float_positional(x, unique=True, trim="0")


class _L3Printer(StrPrinter):
    """sympy -> libSBML L3 infix formula."""

    def _print_Symbol(self, expr: Any) -> str:
        return "time" if expr == TIME else expr.name

    def _print_Float(self, expr: Any) -> str:
        return _number(float(expr))

    def _print_Integer(self, expr: Any) -> str:
        return str(int(expr))

    def _print_Rational(self, expr: Any) -> str:
        return f"({expr.p}/{expr.q})"

    def _print_Half(self, expr: Any) -> str:
        return "(1/2)"

    def _print_Pi(self, expr: Any) -> str:
        return "pi"

    def _print_Exp1(self, expr: Any) -> str:
        return "exponentiale"

    def _print_BooleanTrue(self, expr: Any) -> str:
        return "true"

    def _print_BooleanFalse(self, expr: Any) -> str:
        return "false"

    def _print_Infinity(self, expr: Any) -> str:
        return "INF"

    def _print_NegativeInfinity(self, expr: Any) -> str:
        return "-INF"

    def _print_Pow(self, expr: Any, rational: bool = False) -> str:
        base, exp = expr.args
        if exp == sp.S.Half:
            return f"sqrt({self._print(base)})"
        if exp == -sp.S.Half:
            return f"(1/sqrt({self._print(base)}))"
        b = self._print(base) if base.is_Symbol else f"({self._print(base)})"
        e = self._print(exp) if (exp.is_Symbol or (exp.is_Integer and exp >= 0)) else f"({self._print(exp)})"
        return f"{b}^{e}"

    def _print_Mul(self, expr: Any) -> str:
        return "(" + super()._print_Mul(expr) + ")" if expr.could_extract_minus_sign() else super()._print_Mul(expr)

    def _fn(self, name: str, expr: Any) -> str:
        return f"{name}(" + ", ".join(self._print(a) for a in expr.args) + ")"

    def _print_exp(self, expr: Any) -> str:
        return self._fn("exp", expr)

    def _print_log(self, expr: Any) -> str:
        return self._fn("ln", expr)

    def _print_Abs(self, expr: Any) -> str:
        return self._fn("abs", expr)

    def _print_floor(self, expr: Any) -> str:
        return self._fn("floor", expr)

    def _print_ceiling(self, expr: Any) -> str:
        return self._fn("ceiling", expr)

    def _print_Min(self, expr: Any) -> str:
        return self._fn("min", expr)

    def _print_Max(self, expr: Any) -> str:
        return self._fn("max", expr)

    def _print_Heaviside(self, expr: Any) -> str:
        x = self._print(expr.args[0])
        return f"piecewise(1, {x} > 0, 0.5, {x} == 0, 0)"

    def _print_sign(self, expr: Any) -> str:
        x = self._print(expr.args[0])
        return f"piecewise(1, {x} > 0, -1, {x} < 0, 0)"

    def _print_Piecewise(self, expr: Any) -> str:
        parts: list[str] = []
        for value, cond in expr.args:
            if cond == sp.true:
                parts.append(self._print(value))
                break
            parts += [self._print(value), self._print(cond)]
        else:
            raise ModelError(f"a piecewise expression without an 'otherwise' branch cannot be exported: {expr}")
        return "piecewise(" + ", ".join(parts) + ")"

    def _print_Relational(self, expr: Any) -> str:
        op = {"==": "==", "!=": "!=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}[expr.rel_op]
        return f"({self._print(expr.lhs)} {op} {self._print(expr.rhs)})"

    def _print_And(self, expr: Any) -> str:
        return "(" + " && ".join(self._print(a) for a in expr.args) + ")"

    def _print_Or(self, expr: Any) -> str:
        return "(" + " || ".join(self._print(a) for a in expr.args) + ")"

    def _print_Not(self, expr: Any) -> str:
        return f"!({self._print(expr.args[0])})"

    def _print_ITE(self, expr: Any) -> str:
        c, a, b = (self._print(x) for x in expr.args)
        return f"(({c} && {a}) || (!({c}) && {b}))"

    def _print_Function(self, expr: Any) -> str:
        name = type(expr).__name__
        if name in _L3_FUNCTIONS:
            return self._fn(name, expr)
        raise ModelError(f"function {name!r} has no SBML counterpart in the exporter; rewrite it (in {expr})")

    def emptyPrinter(self, expr: Any) -> str:
        raise ModelError(f"cannot export {type(expr).__name__} to SBML (in {expr})")

    def parenthesize(self, item: Any, level: int, strict: bool = False) -> str:
        # always parenthesise a lower-or-equal precedence operand: L3 and Python differ on unary minus vs ^
        if precedence(item) <= level:
            return f"({self._print(item)})"
        return self._print(item)


_L3_FUNCTIONS = {"sin", "cos", "tan", "sinh", "cosh", "tanh", "asin", "acos", "atan", "sec", "csc", "cot"}


def l3_formula(expr: Any) -> str:
    """``expr`` (sympy) as libSBML Level 3 infix text."""
    return _L3Printer({"order": "none"}).doprint(sp.sympify(expr))


def to_ast(expr: Any, model: Any, where: str) -> Any:
    """The libSBML ``ASTNode`` of ``expr``; ``model`` resolves its ids (so an id like ``pi`` stays a name)."""
    import libsbml

    text = l3_formula(expr)
    settings = libsbml.L3ParserSettings()
    settings.setModel(model)
    settings.setParseLog(libsbml.L3P_PARSE_LOG_AS_LN)
    settings.setParseCollapseMinus(False)
    ast = libsbml.parseL3FormulaWithSettings(text, settings)
    if ast is None:
        raise ModelError(f"{where}: libSBML cannot parse {text!r}: {libsbml.getLastParseL3Error()}")
    return ast


# ---- SBML -> sympy ------------------------------------------------------------------------------------------------
def _unary(fn: Callable[[sp.Expr], sp.Expr]) -> Callable[[list[sp.Expr]], sp.Expr]:
    def apply(args: list[sp.Expr]) -> sp.Expr:
        if len(args) != 1:
            raise ValueError("takes one argument")
        return fn(args[0])

    return apply


def _log(args: list[sp.Expr]) -> sp.Expr:
    if len(args) == 1:
        return sp.log(args[0], 10)
    base, x = args
    return sp.log(x) / sp.log(base)


def _root(args: list[sp.Expr]) -> sp.Expr:
    if len(args) == 1:
        return sp.sqrt(args[0])
    degree, x = args
    return sp.Pow(x, 1 / degree)


def _pow(args: list[sp.Expr]) -> sp.Expr:
    base, exp = args
    if isinstance(exp, sp.Float) and float(exp).is_integer() and abs(float(exp)) <= 64:
        exp = sp.Integer(int(exp))  # MathML <cn>2</cn> is real; x^2 is x*x (exact, and no pow() in the kernel)
    return sp.Pow(base, exp)


def _minus(args: list[sp.Expr]) -> sp.Expr:
    return -args[0] if len(args) == 1 else args[0] - args[1]


def _relational(cls: Any) -> Callable[[list[sp.Expr]], Any]:
    def apply(args: list[sp.Expr]) -> Any:
        if len(args) < 2:
            raise ValueError("needs two arguments")
        pairs = [cls(a, b) for a, b in itertools.pairwise(args)]
        return pairs[0] if len(pairs) == 1 else sp.And(*pairs)

    return apply


def _piecewise(args: list[Any]) -> sp.Expr:
    pieces = [(args[i], args[i + 1]) for i in range(0, len(args) - 1, 2)]
    if len(args) % 2 == 0:
        raise ValueError("a piecewise without an 'otherwise' branch is outside the supported subset")
    return sp.Piecewise(*pieces, (args[-1], True))


@cache
def _operators() -> dict[int, Callable[[list[Any]], Any]]:
    import libsbml as lib

    return {
        lib.AST_PLUS: lambda a: sp.Add(*a),
        lib.AST_MINUS: _minus,
        lib.AST_TIMES: lambda a: sp.Mul(*a),
        lib.AST_DIVIDE: lambda a: a[0] / a[1],
        lib.AST_POWER: _pow,
        lib.AST_FUNCTION_POWER: _pow,
        lib.AST_FUNCTION_ROOT: _root,
        lib.AST_FUNCTION_ABS: _unary(sp.Abs),
        lib.AST_FUNCTION_EXP: _unary(sp.exp),
        lib.AST_FUNCTION_LN: _unary(sp.log),
        lib.AST_FUNCTION_LOG: _log,
        lib.AST_FUNCTION_FLOOR: _unary(sp.floor),
        lib.AST_FUNCTION_CEILING: _unary(sp.ceiling),
        lib.AST_FUNCTION_SIN: _unary(sp.sin),
        lib.AST_FUNCTION_COS: _unary(sp.cos),
        lib.AST_FUNCTION_TAN: _unary(sp.tan),
        lib.AST_FUNCTION_SINH: _unary(sp.sinh),
        lib.AST_FUNCTION_COSH: _unary(sp.cosh),
        lib.AST_FUNCTION_TANH: _unary(sp.tanh),
        lib.AST_FUNCTION_ARCSIN: _unary(sp.asin),
        lib.AST_FUNCTION_ARCCOS: _unary(sp.acos),
        lib.AST_FUNCTION_ARCTAN: _unary(sp.atan),
        lib.AST_FUNCTION_MAX: lambda a: sp.Max(*a),
        lib.AST_FUNCTION_MIN: lambda a: sp.Min(*a),
        lib.AST_FUNCTION_PIECEWISE: _piecewise,
        lib.AST_LOGICAL_AND: lambda a: sp.And(*a),
        lib.AST_LOGICAL_OR: lambda a: sp.Or(*a),
        lib.AST_LOGICAL_XOR: lambda a: sp.Xor(*a),
        lib.AST_LOGICAL_NOT: _unary(sp.Not),
        lib.AST_RELATIONAL_EQ: _relational(sp.Eq),
        lib.AST_RELATIONAL_NEQ: _relational(sp.Ne),
        lib.AST_RELATIONAL_GT: _relational(sp.StrictGreaterThan),
        lib.AST_RELATIONAL_GEQ: _relational(sp.GreaterThan),
        lib.AST_RELATIONAL_LT: _relational(sp.StrictLessThan),
        lib.AST_RELATIONAL_LEQ: _relational(sp.LessThan),
    }


def from_ast(
    node: Any,
    names: Mapping[str, Any],
    functions: Mapping[str, Any],
    where: str,
    _env: Mapping[str, Any] | None = None,
    _depth: int = 0,
) -> Any:
    """The sympy expression of the libSBML ``ASTNode`` ``node``.

    Parameters
    ----------
    node
        The parsed math (``element.getMath()``).
    names
        SBML id -> sympy expression (usually the symbol of the state or parameter).
    functions
        SBML function-definition id -> its ``FunctionDefinition`` (calls are inlined).
    where
        The element, for error messages (e.g. ``"kinetic law of reaction 'R1'"``).

    Raises
    ------
    ModelError
        For a construct outside the supported subset (delay, rateOf, csymbols other than time, unknown names or
        functions), naming ``where`` and the formula.
    """
    import libsbml as lib

    if node is None:
        raise ModelError(f"{where}: has no math")
    if _depth > 200:
        raise ModelError(f"{where}: function definitions nest deeper than 200 calls (recursive?)")
    env = _env or {}
    t = node.getType()

    def fail(why: str) -> ModelError:
        return ModelError(f"{where}: {why} (in {lib.formulaToL3String(node)!r}); outside abscopal's SBML subset")

    if t == lib.AST_INTEGER:
        return sp.Integer(node.getInteger())
    if t in (lib.AST_REAL, lib.AST_REAL_E):
        return sp.Float(node.getReal())
    if t == lib.AST_RATIONAL:
        return sp.Rational(node.getNumerator(), node.getDenominator())
    if t == lib.AST_NAME:
        name = node.getName()
        if name in env:
            return env[name]
        if name in names:
            return names[name]
        raise fail(f"unknown name {name!r}")
    if t == lib.AST_NAME_TIME:
        return TIME
    if t == lib.AST_NAME_AVOGADRO:
        return sp.Float(AVOGADRO)
    if t == lib.AST_CONSTANT_PI:
        return sp.pi
    if t == lib.AST_CONSTANT_E:
        return sp.E
    if t == lib.AST_CONSTANT_TRUE:
        return sp.true
    if t == lib.AST_CONSTANT_FALSE:
        return sp.false
    args = [from_ast(node.getChild(i), names, functions, where, env, _depth) for i in range(node.getNumChildren())]
    if t == lib.AST_FUNCTION:
        fname = node.getName()
        fd = functions.get(fname)
        if fd is None or fd.getMath() is None:
            raise fail(f"unknown function {fname!r}")
        lam = fd.getMath()
        n_bvar = lam.getNumBvars()
        if n_bvar != len(args):
            raise fail(f"function {fname!r} takes {n_bvar} arguments, got {len(args)}")
        inner = {lam.getChild(i).getName(): args[i] for i in range(n_bvar)}
        return from_ast(lam.getChild(n_bvar), names, functions, f"{where}, function {fname!r}", inner, _depth + 1)
    op = _operators().get(t)
    if op is None:
        raise fail(f"the MathML element {node.getName() or lib.formulaToL3String(node)!r} (type {t}) is not supported")
    try:
        return op(args)
    except (ValueError, TypeError, IndexError) as exc:
        raise fail(str(exc)) from None
