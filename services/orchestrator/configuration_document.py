"""What a stored configuration document must be: the checks, each naming its field.

A configuration is the JSON an optimization job writes for its best parameters (kind
``trainwire.configuration``): a strategy, its parameters as text, symbols, timeframes, the
objective and the in-sample and out-of-sample scores (``null`` where there is none), plus
whatever else the job records (data range, settings, stats), kept as sent.
"""

from __future__ import annotations

import json
import re
from typing import Any, NoReturn

from shared import errors

KIND = "trainwire.configuration"
STRATEGY_MAX = 80
_STRATEGY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_strategy_filter(strategy: str) -> str:
    """A list request's strategy filter: empty, or a strategy name as the catalogue shows it."""
    if strategy and check_strategy_name(strategy) is None:
        raise errors.InvalidArgumentError(
            f"not a strategy name: use the strategy as ListConfigurations shows it (up to "
            f"{STRATEGY_MAX} letters, digits, '.', '_' or '-'), or none for every strategy",
            field="strategy",
        )
    return strategy


def parse_configuration(text: str) -> dict[str, Any]:
    """The configuration document, checked: an object of kind ``trainwire.configuration`` with
    a strategy, string parameters, symbols, timeframes, an objective and (nullable) scores.
    ``InvalidArgumentError`` names the first field that is wrong as ``configuration_json.KEY``."""
    try:
        document = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise errors.InvalidArgumentError(
            f"not JSON ({exc}); send the configuration JSON the optimization built",
            field="configuration_json",
        ) from None
    if not isinstance(document, dict):
        raise errors.InvalidArgumentError(
            f"must be a JSON object, not {type(document).__name__}", field="configuration_json"
        )
    if document.get("kind") != KIND:
        bad_field("kind", f'must be "{KIND}"')
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        bad_field("version", "must be a positive integer (the format's version, 1)")
    strategy = document.get("strategy")
    if not isinstance(strategy, str) or check_strategy_name(strategy) is None:
        bad_field(
            "strategy",
            f"must be a strategy name: 1-{STRATEGY_MAX} letters, digits, '.', '_' or '-'",
        )
    params = document.get("params")
    if not isinstance(params, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str) for k, v in params.items()
    ):
        bad_field(
            "params", 'must be an object of parameter name to value as text, e.g. {"n": "20"}'
        )
    for key in ("symbols", "timeframes"):
        values = document.get(key)
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, str) and v for v in values)
        ):
            bad_field(key, "must be a non-empty list of non-empty strings")
    objective = document.get("objective")
    if (
        not isinstance(objective, dict)
        or not isinstance(objective.get("stat"), str)
        or not objective["stat"]
        or not isinstance(objective.get("minimize", False), bool)
    ):
        bad_field("objective", 'must be {"stat": STAT, "minimize": true|false}')
    score = document.get("score", {})
    if not isinstance(score, dict) or not all(
        _is_score(score.get(k)) for k in ("in_sample", "out_of_sample")
    ):
        bad_field("score", 'must be {"in_sample": NUMBER|null, "out_of_sample": NUMBER|null}')
    return document


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number; write null for a missing score")


def check_strategy_name(strategy: str) -> str | None:
    ok = len(strategy) <= STRATEGY_MAX and strategy.isascii() and _STRATEGY_RE.fullmatch(strategy)
    return strategy if ok else None


def _is_score(value: object) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def bad_field(key: str, message: str) -> NoReturn:
    raise errors.InvalidArgumentError(message, field=f"configuration_json.{key}")
