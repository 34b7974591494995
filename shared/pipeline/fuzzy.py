"""Fuzzy membership functions (KTRDR v3 shapes): vectorised, pure, values in [0, 1].

Degenerate edges are *shoulders*: a trapezoid with ``a == b`` is 1 for every x <= b (open to the
left) and one with ``c == d`` is 1 for every x >= c (open to the right); a triangle with
``a == b`` or ``b == c`` is the matching shoulder. So ``trapezoidal(-1, -1, -0.03, 0)`` reads
"below -3 %, fading out by 0". A triangle with ``a == b == c`` is a crisp singleton (1 only at
x == b). NaN inputs (indicator warm-up) stay NaN.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from shared.spec import FuzzySetSpec

FloatArray = npt.NDArray[np.float64]


def _rising(x: FloatArray, a: float, b: float) -> FloatArray:
    """0 at/below a, 1 at/above b, linear between; a == b is a left shoulder (1 for x <= b)."""
    if a == b:
        return np.ones_like(x)
    return np.clip((x - a) / (b - a), 0.0, 1.0)


def _falling(x: FloatArray, c: float, d: float) -> FloatArray:
    """1 at/below c, 0 at/above d, linear between; c == d is a right shoulder (1 for x >= c)."""
    if c == d:
        return np.ones_like(x)
    return np.clip((d - x) / (d - c), 0.0, 1.0)


def trapezoidal(x: npt.ArrayLike, a: float, b: float, c: float, d: float) -> FloatArray:
    """0 outside [a, d], 1 on [b, c], linear on the flanks (a <= b <= c <= d)."""
    values = np.asarray(x, dtype=np.float64)
    out = np.minimum(_rising(values, a, b), _falling(values, c, d))
    if a == b == c == d:
        out = (values == b).astype(np.float64)
    return np.where(np.isnan(values), np.nan, out)


def triangular(x: npt.ArrayLike, a: float, b: float, c: float) -> FloatArray:
    """0 outside [a, c], 1 at b, linear between (a <= b <= c)."""
    return trapezoidal(x, a, b, b, c)


def gaussian(x: npt.ArrayLike, mean: float, sigma: float) -> FloatArray:
    """exp(-(x - mean)² / (2 sigma²)), sigma > 0."""
    if sigma <= 0:
        raise ValueError("gaussian sigma must be > 0")
    values = np.asarray(x, dtype=np.float64)
    z = (values - mean) / sigma
    out: FloatArray = np.exp(-0.5 * z * z)
    return out


_SHAPES: dict[str, Callable[..., FloatArray]] = {
    "triangular": triangular,
    "trapezoidal": trapezoidal,
    "gaussian": gaussian,
}


def fuzzify(spec: FuzzySetSpec, values: npt.ArrayLike) -> FloatArray:
    """Membership of ``values`` in the fuzzy set ``spec`` (NaN stays NaN)."""
    shape = _SHAPES.get(spec.shape)
    if shape is None:
        raise ValueError(f"unknown fuzzy shape {spec.shape!r}")
    return shape(values, *spec.params)


DEFINITIONS: dict[str, str] = {
    "triangular": (
        "params [a, b, c]: the trapezoidal [a, b, b, c] (0 outside [a, c], 1 at b, linear "
        "between; a = b is a left shoulder, b = c a right one, a = b = c is 1 only at x = b)"
    ),
    "trapezoidal": (
        "params [a, b, c, d]: min(rise, fall), rise = clip((x - a)/(b - a), 0, 1) or 1 when "
        "a = b (a left shoulder: 1 for every x <= b), fall = clip((d - x)/(d - c), 0, 1) or 1 "
        "when c = d (a right shoulder); a = b = c = d is 1 only at x = b"
    ),
    "gaussian": "params [mean, sigma]: exp(-(x - mean)^2 / (2 sigma^2))",
    "nan": "a NaN input (indicator warm-up) gives a NaN membership",
}
"""Membership formulas in words, for the artifact."""
