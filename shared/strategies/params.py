"""Typed strategy parameters: what each one is, and turning a request's values into them.

``resolve_params(strategy, raw)`` returns every parameter of the strategy: the given values
checked and coerced (``"12"`` or ``12.0`` become 12 for an int; ``"true"``/``"false"``, 1/0 for a
bool), the rest defaults. Errors are ``InvalidArgumentError`` with ``field="params.NAME"`` and a
message saying what to change: an unknown name (the known ones listed), a wrong type, a value
out of range (the range given), a choice not offered (the choices listed), or a broken
constraint between parameters (the strategy's ``check``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped, unused-ignore]

from shared.errors import InvalidArgumentError

ParamType = Literal["int", "float", "categorical", "bool"]
Signals = npt.NDArray[np.int8]


@dataclass(frozen=True, kw_only=True)
class ParamSpec:
    """One parameter of a strategy, with what an optimizer needs to search it."""

    name: str
    type: ParamType
    default: object
    low: float | None = None
    """Smallest allowed value (int/float), inclusive."""
    high: float | None = None
    """Largest allowed value (int/float), inclusive."""
    step: float | None = None
    """Grid step for an optimizer's search (int/float); values need not lie on it."""
    choices: tuple[str, ...] = ()
    """The allowed values of a categorical parameter."""
    description: str = ""

    def range_text(self) -> str:
        if self.type == "categorical":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.type == "bool":
            return "true or false"
        return f"{self.type} in [{_num(self.low)}, {_num(self.high)}]"


class RuleStrategy(Protocol):
    """A rule-based strategy: parameters and a function from bars to signals.

    ``signals(bars, params)`` returns int8, one per bar: the position wanted after that bar's
    close (+1 long, -1 short, 0 flat); ``params`` are resolved (``resolve_params``). It looks
    only at bars up to each row (no look-ahead); warm-up rows are 0.
    """

    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str:
        """One paragraph: what it trades and when."""
        ...

    @property
    def params(self) -> tuple[ParamSpec, ...]: ...

    def signals(self, bars: pd.DataFrame, params: Mapping[str, object]) -> Signals: ...


@runtime_checkable
class Checked(Protocol):
    """A strategy with constraints between its parameters (e.g. fast < slow)."""

    def check(self, params: Mapping[str, object]) -> None: ...


def _num(value: float | None) -> str:
    if value is None:
        return "any"
    return str(int(value)) if float(value).is_integer() else repr(value)


def _fail(spec: ParamSpec, got: object, what: str = "") -> InvalidArgumentError:
    return InvalidArgumentError(
        f"parameter {spec.name!r} must be {what or spec.range_text()}, not {got!r}",
        field=f"params.{spec.name}",
    )


def _number(spec: ParamSpec, raw: object) -> float:
    if isinstance(raw, bool):
        raise _fail(spec, raw)
    if isinstance(raw, str):
        try:
            value = float(raw.strip())
        except ValueError:
            raise _fail(spec, raw) from None
    elif isinstance(raw, int | float | np.integer | np.floating):
        value = float(raw)
    else:
        raise _fail(spec, raw)
    if not math.isfinite(value):
        raise _fail(spec, raw)
    return value


def coerce(spec: ParamSpec, raw: object) -> object:
    """``raw`` as a value of ``spec``'s type, in range; raises ``InvalidArgumentError``."""
    if spec.type == "bool":
        if isinstance(raw, bool | np.bool_):
            return bool(raw)
        text = str(raw).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise _fail(spec, raw)
    if spec.type == "categorical":
        if isinstance(raw, str) and raw in spec.choices:
            return raw
        raise _fail(spec, raw)
    value = _number(spec, raw)
    if spec.type == "int":
        if not value.is_integer():
            raise _fail(spec, raw, f"a whole number ({spec.range_text()})")
        value = int(value)
    if (spec.low is not None and value < spec.low) or (spec.high is not None and value > spec.high):
        raise _fail(spec, raw)
    return value


def resolve_params(strategy: RuleStrategy, raw: Mapping[str, object]) -> dict[str, object]:
    """Every parameter of ``strategy``: ``raw`` checked and coerced, the rest defaults."""
    specs = {p.name: p for p in strategy.params}
    unknown = [name for name in raw if name not in specs]
    if unknown:
        known = ", ".join(specs) or "none"
        raise InvalidArgumentError(
            f"strategy {strategy.name!r} has no parameter {unknown[0]!r}; known: {known}",
            field=f"params.{unknown[0]}",
        )
    out = {
        name: coerce(spec, raw[name]) if name in raw else spec.default
        for name, spec in specs.items()
    }
    if isinstance(strategy, Checked):
        strategy.check(out)
    return out


def constraint(ok: bool, name: str, message: str) -> None:
    """Raise the error of a broken constraint between parameters, on parameter ``name``."""
    if not ok:
        raise InvalidArgumentError(message, field=f"params.{name}")


def int_param(params: Mapping[str, object], name: str) -> int:
    """A resolved int parameter (``resolve_params`` made it one)."""
    value = params[name]
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InvalidArgumentError(
            f"parameter {name!r} must be a whole number, not {value!r}", field=f"params.{name}"
        )
    return int(value)


def float_param(params: Mapping[str, object], name: str) -> float:
    """A resolved float parameter."""
    value = params[name]
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise InvalidArgumentError(
            f"parameter {name!r} must be a number, not {value!r}", field=f"params.{name}"
        )
    return float(value)
