"""Radiobiology: linear-quadratic cell survival, BED/EQD2 and lung NTCP.

Pure, vectorised numpy functions. Every argument broadcasts against the others, and
every function validates its inputs before computing anything: doses and fraction
counts that make no sense raise :class:`~abscopal.errors.ScheduleError`,
radiobiological parameters that make no sense raise
:class:`~abscopal.errors.ParameterError`. Both name the argument, show the offending
value and say how to fix it.

Formulas (the standard linear-quadratic model; Fowler JF, Br J Radiol 1989;62:679-694):

* surviving fraction after ``n`` fractions of ``d`` Gy: ``S = exp(-n (alpha d + beta d^2))``
* ``BED = n d (1 + d / (alpha/beta))``
* ``EQD2 = BED / (1 + 2 / (alpha/beta)) = n d (d + alpha/beta) / (2 + alpha/beta)``

Scalars in give numpy scalars (0-d float64) out; arrays in give arrays out.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtr

from .errors import ParameterError, ScheduleError

__all__ = [
    "SEPPENWOOLDE_2003_M",
    "SEPPENWOOLDE_2003_TD50_GY",
    "bed",
    "eqd2",
    "eqd2_per_fraction_corrected_mean_dose",
    "lkb_ntcp",
    "lq_survival",
    "lql_survival",
]

# LKB NTCP for radiation pneumonitis (SWOG grade >= 2) on the mean lung dose,
# Seppenwoolde Y et al. 2003, Int J Radiat Oncol Biol Phys 55:724-735, PMID 12573760
# (tag [P]); n ~ 1, i.e. the mean lung dose is the
# effective dose. The fit used DVHs corrected for dose per fraction.
SEPPENWOOLDE_2003_TD50_GY = 30.8
SEPPENWOOLDE_2003_M = 0.37

_FloatArray = NDArray[np.float64]


def _first_bad(values: _FloatArray, bad: NDArray[np.bool_]) -> str:
    """Format the first offending entry of ``values`` (with its index for arrays)."""
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    value = float(values[index])
    return repr(value) if values.ndim == 0 else f"{value!r} at index {index}"


def _checked(name: str, value: ArrayLike, error: type[Exception], bound: str, fix: str) -> _FloatArray:
    """Convert ``value`` to a finite float array, checking ``bound`` (">= 0", "> 0", "")."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise error(f"{name} must be numeric, got {value!r}; {fix}") from exc
    checks = [("finite", ~np.isfinite(array))]
    if bound:
        checks.append((bound, array <= 0.0 if bound == "> 0" else array < 0.0))
    for text, bad in checks:
        if np.any(bad):
            raise error(f"{name} must be {text}, got {_first_bad(array, bad)}; {fix}")
    return array


def _dose(name: str, value: ArrayLike) -> _FloatArray:
    return _checked(name, value, ScheduleError, ">= 0", "give a non-negative dose in Gy")


def _coefficient(name: str, value: ArrayLike, bound: str = ">= 0") -> _FloatArray:
    return _checked(name, value, ParameterError, bound, "give a positive value")


def _n_fractions(value: ArrayLike) -> _FloatArray:
    fix = "give a whole number of fractions >= 1"
    array = _checked("n_fractions", value, ScheduleError, "", fix)
    bad = (array < 1.0) | (array != np.round(array))
    if np.any(bad):
        raise ScheduleError(f"n_fractions must be a whole number >= 1, got {_first_bad(array, bad)}; {fix}")
    return array


def _alpha_beta(value: ArrayLike) -> _FloatArray:
    fix = "give alpha/beta in Gy (e.g. 10 for tumour, 3 for late lung)"
    return _checked("alpha_beta_gy", value, ParameterError, "> 0", fix)


def _broadcast(*arrays: _FloatArray) -> None:
    """Raise ParameterError if the arguments do not broadcast together."""
    try:
        np.broadcast_shapes(*(a.shape for a in arrays))
    except ValueError as exc:
        shapes = ", ".join(str(a.shape) for a in arrays)
        raise ParameterError(
            f"arguments do not broadcast together, shapes {shapes}; give scalars or arrays of compatible shapes"
        ) from exc


def lq_survival(
    dose_per_fraction_gy: ArrayLike,
    n_fractions: ArrayLike = 1,
    *,
    alpha_per_gy: ArrayLike,
    beta_per_gy2: ArrayLike,
) -> _FloatArray:
    """Surviving fraction under the linear-quadratic (LQ) model.

    ``S = exp(-n (alpha d + beta d^2))`` (Fowler 1989).

    Parameters
    ----------
    dose_per_fraction_gy
        Dose per fraction ``d`` in Gy, >= 0.
    n_fractions
        Number of equal fractions ``n``, a whole number >= 1. Complete repair between
        fractions is assumed.
    alpha_per_gy
        Linear coefficient ``alpha`` in 1/Gy, >= 0.
    beta_per_gy2
        Quadratic coefficient ``beta`` in 1/Gy^2, >= 0.

    Returns
    -------
    numpy.ndarray
        Surviving fraction in (0, 1], broadcast over the inputs.

    Raises
    ------
    ScheduleError
        If a dose is negative or not finite, or ``n_fractions`` is not a whole number >= 1.
    ParameterError
        If ``alpha_per_gy`` or ``beta_per_gy2`` is negative or not finite.

    Examples
    --------
    >>> round(float(lq_survival(2.0, 1, alpha_per_gy=0.3, beta_per_gy2=0.03)), 4)  # exp(-0.72)
    0.4868
    """
    d = _dose("dose_per_fraction_gy", dose_per_fraction_gy)
    n = _n_fractions(n_fractions)
    alpha = _coefficient("alpha_per_gy", alpha_per_gy)
    beta = _coefficient("beta_per_gy2", beta_per_gy2)
    _broadcast(d, n, alpha, beta)
    return np.exp(-n * (alpha * d + beta * d * d))


def lql_survival(
    dose_per_fraction_gy: ArrayLike,
    n_fractions: ArrayLike = 1,
    *,
    alpha_per_gy: ArrayLike,
    beta_per_gy2: ArrayLike,
    transition_dose_gy: ArrayLike,
) -> _FloatArray:
    """Surviving fraction under the linear-quadratic-linear (LQ-L) model.

    Astrahan M. 2008, "Some implications of linear-quadratic-linear radiation
    dose-response with regard to hypofractionation", Med Phys 35(9):4161-4172.
    Below the transition dose ``D_t`` the curve is LQ; above it the log cell kill is
    linear with the slope of the LQ curve at ``D_t`` (value and slope are continuous):

    * ``-ln S_1 = alpha d + beta d^2``                                   for ``d <= D_t``
    * ``-ln S_1 = alpha D_t + beta D_t^2 + (alpha + 2 beta D_t)(d - D_t)`` for ``d > D_t``

    and ``S = S_1^n`` for ``n`` equal fractions. The linear tail addresses the SBRT
    caveat that LQ may overestimate cell kill above ~8-10 Gy per fraction
    (Chi A et al., Biomed Res Int 2013:391021).

    Parameters
    ----------
    dose_per_fraction_gy
        Dose per fraction ``d`` in Gy, >= 0.
    n_fractions
        Number of equal fractions, a whole number >= 1.
    alpha_per_gy, beta_per_gy2
        LQ coefficients (1/Gy, 1/Gy^2), >= 0.
    transition_dose_gy
        Transition dose ``D_t`` in Gy, > 0.

    Returns
    -------
    numpy.ndarray
        Surviving fraction in (0, 1], broadcast over the inputs.

    Raises
    ------
    ScheduleError
        If a dose or ``n_fractions`` is invalid.
    ParameterError
        If a coefficient is negative or ``transition_dose_gy`` is not > 0.
    """
    d = _dose("dose_per_fraction_gy", dose_per_fraction_gy)
    n = _n_fractions(n_fractions)
    alpha = _coefficient("alpha_per_gy", alpha_per_gy)
    beta = _coefficient("beta_per_gy2", beta_per_gy2)
    d_t = _coefficient("transition_dose_gy", transition_dose_gy, "> 0")
    _broadcast(d, n, alpha, beta, d_t)
    quadratic = alpha * d + beta * d * d
    linear_tail = alpha * d_t + beta * d_t * d_t + (alpha + 2.0 * beta * d_t) * (d - d_t)
    log_kill_per_fraction = np.where(d <= d_t, quadratic, linear_tail)
    return np.exp(-n * log_kill_per_fraction)


def bed(total_dose_gy: ArrayLike, n_fractions: ArrayLike, alpha_beta_gy: ArrayLike) -> _FloatArray:
    """Biologically effective dose, ``BED = D (1 + (D/n) / (alpha/beta))``.

    No repopulation term (Fowler 1989).

    Parameters
    ----------
    total_dose_gy
        Total physical dose ``D = n d`` in Gy, >= 0.
    n_fractions
        Number of equal fractions ``n``, a whole number >= 1.
    alpha_beta_gy
        alpha/beta ratio in Gy, > 0 (10 for NSCLC, 3 for late lung by convention).

    Returns
    -------
    numpy.ndarray
        BED in Gy.

    Raises
    ------
    ScheduleError
        If a dose is negative or ``n_fractions`` is not a whole number >= 1.
    ParameterError
        If ``alpha_beta_gy`` is not > 0.

    Examples
    --------
    >>> round(float(bed(24.0, 3, 10.0)), 1)  # PEMBRO-RT SBRT, table 4.2
    43.2
    """
    total = _dose("total_dose_gy", total_dose_gy)
    n = _n_fractions(n_fractions)
    ab = _alpha_beta(alpha_beta_gy)
    _broadcast(total, n, ab)
    return total * (1.0 + (total / n) / ab)


def eqd2(total_dose_gy: ArrayLike, n_fractions: ArrayLike, alpha_beta_gy: ArrayLike) -> _FloatArray:
    """Equivalent dose in 2-Gy fractions, ``EQD2 = D (D/n + alpha/beta) / (2 + alpha/beta)``.

    Parameters
    ----------
    total_dose_gy
        Total physical dose in Gy, >= 0.
    n_fractions
        Number of equal fractions, a whole number >= 1.
    alpha_beta_gy
        alpha/beta ratio in Gy, > 0.

    Returns
    -------
    numpy.ndarray
        EQD2 in Gy (equal to ``BED / (1 + 2 / (alpha/beta))``).

    Raises
    ------
    ScheduleError, ParameterError
        As :func:`bed`.

    Examples
    --------
    >>> round(float(eqd2(50.0, 4, 10.0)), 1)  # MDACC SBRT, table 4.2
    93.8
    """
    total = _dose("total_dose_gy", total_dose_gy)
    n = _n_fractions(n_fractions)
    ab = _alpha_beta(alpha_beta_gy)
    _broadcast(total, n, ab)
    return total * (total / n + ab) / (2.0 + ab)


def lkb_ntcp(
    mean_dose_gy: ArrayLike,
    *,
    td50_gy: ArrayLike = SEPPENWOOLDE_2003_TD50_GY,
    m: ArrayLike = SEPPENWOOLDE_2003_M,
) -> _FloatArray:
    """Lyman-Kutcher-Burman NTCP on the mean organ dose (volume parameter n = 1).

    ``NTCP = Phi((D - TD50) / (m TD50))`` with ``Phi`` the standard normal CDF.
    The defaults are the radiation-pneumonitis fit of Seppenwoolde et al. 2003
    (IJROBP 55:724, PMID 12573760; TD50 = 30.8 Gy, m = 0.37), which used
    fraction-size-corrected DVHs: pass a fraction-size-corrected (EQD2) mean lung
    dose, e.g. from :func:`eqd2_per_fraction_corrected_mean_dose`.

    Parameters
    ----------
    mean_dose_gy
        Mean organ dose in Gy, >= 0.
    td50_gy
        Dose giving 50% complication probability, Gy, > 0.
    m
        Slope parameter (dimensionless), > 0.

    Returns
    -------
    numpy.ndarray
        Complication probability in [0, 1].

    Raises
    ------
    ScheduleError
        If ``mean_dose_gy`` is negative or not finite.
    ParameterError
        If ``td50_gy`` or ``m`` is not > 0.

    Examples
    --------
    >>> round(float(lkb_ntcp(20.0)), 3)  # Seppenwoolde 2003 LKB at MLD 20 Gy: 17.2%
    0.172
    """
    dose = _dose("mean_dose_gy", mean_dose_gy)
    td50 = _coefficient("td50_gy", td50_gy, "> 0")
    slope = _coefficient("m", m, "> 0")
    _broadcast(dose, td50, slope)
    return ndtr((dose - td50) / (slope * td50))


def eqd2_per_fraction_corrected_mean_dose(
    mean_dose_gy: ArrayLike, n_fractions: ArrayLike, alpha_beta_gy: ArrayLike = 3.0
) -> _FloatArray:
    """EQD2 of a mean (lung) dose delivered in ``n`` equal fractions.

    ``MLD_EQD2 = MLD (MLD/n + alpha/beta) / (2 + alpha/beta)``, the per-fraction
    correction applied to the mean dose as if it were a uniform dose. Seppenwoolde
    2003 corrected each DVH bin before averaging; because the correction is convex in
    dose, correcting the mean instead gives a lower bound of the bin-wise corrected MLD
    (Jensen's inequality), exact for a uniform lung dose. Default alpha/beta = 3 Gy is
    the late-lung convention (tag [U]: a standard assumption, no primary source retrieved).

    Parameters
    ----------
    mean_dose_gy
        Physical mean dose of the whole course in Gy, >= 0.
    n_fractions
        Number of fractions of the course, a whole number >= 1.
    alpha_beta_gy
        alpha/beta of the organ in Gy, > 0.

    Returns
    -------
    numpy.ndarray
        Fraction-size-corrected mean dose (EQD2) in Gy, the input of :func:`lkb_ntcp`.

    Raises
    ------
    ScheduleError, ParameterError
        As :func:`eqd2`, naming ``mean_dose_gy`` for a bad dose.
    """
    dose = _dose("mean_dose_gy", mean_dose_gy)
    n = _n_fractions(n_fractions)
    ab = _alpha_beta(alpha_beta_gy)
    _broadcast(dose, n, ab)
    return dose * (dose / n + ab) / (2.0 + ab)
