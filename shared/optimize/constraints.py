"""Constraints between parameters, such as ``fast < slow``, parsed without ``eval``.

The grammar is one comparison, ``NAME OP NAME`` or ``NAME OP NUMBER``, with ``OP`` one of
``<  <=  >  >=  ==  !=``. Names are parameter names (letters, digits, underscores, not starting
with a digit); numbers are decimal (``-3``, ``0.5``, ``1e-3``). A point that breaks any
constraint is never backtested.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from shared.errors import InvalidArgumentError

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_PATTERN = re.compile(
    rf"^\s*(?P<left>{_NAME})\s*(?P<op><=|>=|==|!=|<|>)\s*(?:(?P<name>{_NAME})|(?P<num>{_NUMBER}))\s*$"
)
MAX_TEXT = 200


@dataclass(frozen=True)
class Constraint:
    """``left op right`` where ``right`` is a parameter name or a number."""

    left: str
    op: str
    right: str | float
    text: str

    @property
    def names(self) -> tuple[str, ...]:
        """The parameters the constraint reads."""
        return (self.left, self.right) if isinstance(self.right, str) else (self.left,)

    def holds(self, params: Mapping[str, object]) -> bool:
        """Whether ``params`` (holding every name the constraint reads) satisfy it."""
        left = _number(params[self.left])
        right = _number(params[self.right]) if isinstance(self.right, str) else self.right
        return OPERATORS[self.op](left, right)

    def __str__(self) -> str:
        return self.text


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"constraints compare numbers, not {value!r}")
    return float(value)


def parse_constraint(text: str, index: int = 0) -> Constraint:
    """Parse ``text``; a malformed one raises ``InvalidArgumentError`` on ``constraints[index]``."""
    field = f"constraints[{index}]"
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        raise InvalidArgumentError(
            f"a constraint is text of at most {MAX_TEXT} characters such as 'fast < slow'",
            field=field,
        )
    match = _PATTERN.match(text)
    if match is None:
        raise InvalidArgumentError(
            f"constraint {text!r} is not 'NAME OP NAME' or 'NAME OP NUMBER' with OP one of "
            "< <= > >= == != (for example 'fast < slow' or 'threshold >= 0.5')",
            field=field,
        )
    name, num = match.group("name"), match.group("num")
    right: str | float
    if name is not None:
        if name == match.group("left"):
            raise InvalidArgumentError(
                f"constraint {text!r} compares {name!r} with itself; compare two parameters "
                "or a parameter with a number",
                field=field,
            )
        right = name
    else:
        right = float(num)
        if not math.isfinite(right):
            raise InvalidArgumentError(
                f"constraint {text!r} compares with a number that is not finite", field=field
            )
    return Constraint(
        left=match.group("left"), op=match.group("op"), right=right, text=text.strip()
    )


def parse_constraints(texts: list[str] | tuple[str, ...]) -> tuple[Constraint, ...]:
    return tuple(parse_constraint(text, i) for i, text in enumerate(texts))


def feasible(
    constraints: tuple[Constraint, ...] | list[Constraint], params: Mapping[str, object]
) -> bool:
    return all(c.holds(params) for c in constraints)
