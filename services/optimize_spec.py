"""The YAML optimization spec of ``trainwire optimize --spec FILE``, merged with the flags.

A spec (examples in ``strategies/optimize_*.yaml``) names what the flags do::

    strategy: sma_crossover
    symbols: [GOOG]
    timeframes: [1d]
    space:                      # like --param: LOW:HIGH[:STEP] text, {low, high, step}, or choices
      fast: "5:40:5"
      slow: {low: 20, high: 120, step: 20}
      ma: [sma, ema]
    fixed: {}                   # like --fix
    constraints: ["fast < slow"]
    objective: Sharpe Ratio     # or {stat: Max. Drawdown [%], minimize: false}
    sampler: tpe
    trials: 40
    seed: 7
    timeout: 120                # seconds
    parallel: 1
    walk_forward: {train: 500, test: 250, gap: 0, anchored: false}   # or "500:250"

Flags given beside ``--spec`` win over its values; ``--param NAME=...`` replaces that
parameter's range and adds new ones. Data, range and trading settings are flags only (the
header comment of each example shows them). Unknown keys are refused, naming the known ones.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.flags import FlagError, key_values, walk_forward
from shared.client.kind_requests import RangeSpec

KEYS = (
    "strategy",
    "symbols",
    "timeframes",
    "space",
    "fixed",
    "constraints",
    "objective",
    "sampler",
    "trials",
    "seed",
    "timeout",
    "parallel",
    "walk_forward",
)


@dataclass
class OptimizeSpec:
    """Everything of an optimization but the data and trading settings."""

    strategy: str = ""
    symbols: list[str] = field(default_factory=list)
    timeframes: list[str] = field(default_factory=list)
    space: dict[str, RangeSpec] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


def _strings(doc: dict[str, Any], key: str, where: str) -> list[str]:
    value = doc.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str | int | float) for v in value):
        raise FlagError(f"{where}: {key} is a list of names, e.g. {key}: [GOOG]")
    return [str(v) for v in value]


def _range(name: str, value: Any, where: str) -> RangeSpec:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return [str(v).lower() if isinstance(v, bool) else str(v) for v in value]
    if isinstance(value, dict):
        unknown = set(value) - {"low", "high", "step"}
        if unknown or "low" not in value or "high" not in value:
            raise FlagError(f"{where}: space.{name} is {{low: L, high: H[, step: S]}}")
        try:
            numbers = tuple(float(value[k]) for k in ("low", "high", "step") if k in value)
        except (TypeError, ValueError):
            raise FlagError(f"{where}: space.{name}'s low, high and step are numbers") from None
        return numbers  # type: ignore[return-value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [str(value)]
    raise FlagError(f"{where}: space.{name}: write LOW:HIGH[:STEP], {{low, high, step}} or [a, b]")


def load_spec(path: str) -> OptimizeSpec:
    import yaml

    where = f"--spec {path}"
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise FlagError(f"{where}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise FlagError(f"{where}: not YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise FlagError(f"{where}: the spec must be a mapping (strategy:, space:, ...)")
    unknown = sorted(set(doc) - set(KEYS))
    if unknown:
        raise FlagError(f"{where}: unknown key {', '.join(unknown)}; known: {', '.join(KEYS)}")
    spec = OptimizeSpec(
        strategy=str(doc.get("strategy") or ""),
        symbols=_strings(doc, "symbols", where),
        timeframes=_strings(doc, "timeframes", where),
    )
    space = doc.get("space") or {}
    if not isinstance(space, dict):
        raise FlagError(f"{where}: space maps parameter names to ranges")
    spec.space = {str(k): _range(str(k), v, where) for k, v in space.items()}
    opts = spec.options
    fixed = doc.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise FlagError(f"{where}: fixed maps parameter names to values")
    if fixed:
        opts["fixed_params"] = {str(k): v for k, v in fixed.items()}
    if "constraints" in doc:
        opts["constraints"] = _strings(doc, "constraints", where)
    objective = doc.get("objective")
    if isinstance(objective, dict):
        opts["objective"] = str(objective.get("stat", "Sharpe Ratio"))
        opts["minimize"] = bool(objective.get("minimize", False))
    elif objective is not None:
        opts["objective"] = str(objective)
    for key, option, kind in (
        ("sampler", "sampler", str),
        ("trials", "trials", int),
        ("seed", "seed", int),
        ("timeout", "timeout_s", float),
        ("parallel", "parallelism", int),
    ):
        if doc.get(key) is not None:
            try:
                opts[option] = kind(doc[key])
            except (TypeError, ValueError):
                raise FlagError(f"{where}: {key} must be a {kind.__name__}") from None
    walk = doc.get("walk_forward")
    if isinstance(walk, dict):
        parts = [str(walk.get("train", "")), str(walk.get("test", ""))]
        parts += [str(walk.get("gap", 0))] + (["anchored"] if walk.get("anchored") else [])
        walk = ":".join(parts)
    if walk:
        opts["walk_forward"] = walk_forward(str(walk))
    return spec


def merged(args: argparse.Namespace) -> OptimizeSpec:
    """The spec file (if any) with the flags laid over it."""
    spec = load_spec(args.spec) if args.spec else OptimizeSpec()
    spec.strategy = args.strategy or spec.strategy
    spec.symbols = args.symbols or spec.symbols
    spec.timeframes = args.timeframes or spec.timeframes
    spec.space.update(key_values(args.param, "--param"))
    opts = spec.options
    if args.fix:
        opts["fixed_params"] = {**opts.get("fixed_params", {}), **key_values(args.fix, "--fix")}
    if args.constraint:
        opts["constraints"] = list(args.constraint)
    if args.trials is not None:
        opts["trials"] = None if args.trials == "all" else args.trials
    for flag, option in (
        ("sampler", "sampler"),
        ("seed", "seed"),
        ("timeout", "timeout_s"),
        ("parallel", "parallelism"),
        ("objective", "objective"),
    ):
        if getattr(args, flag) is not None:
            opts[option] = getattr(args, flag)
    if args.minimize:
        opts["minimize"] = True
    if args.walk_forward:
        opts["walk_forward"] = walk_forward(args.walk_forward)
    if not spec.strategy:
        raise FlagError("name the strategy to optimize (trainwire strategies lists them)")
    if not spec.symbols or not spec.timeframes:
        raise FlagError("give --symbols and --timeframes (one each), or both in --spec")
    if not spec.space:
        raise FlagError("give at least one --param NAME=LOW:HIGH[:STEP] to search")
    if args.trials == "all" and opts.get("sampler") != "grid":
        raise FlagError("--trials all runs every point of the grid: add --sampler grid")
    if opts.get("trials") is not None and opts["trials"] <= 0:
        raise FlagError(f"--trials {opts['trials']}: the trial budget must be > 0, e.g. 50")
    if opts.get("timeout_s") is not None and opts["timeout_s"] <= 0:
        raise FlagError(f"--timeout {opts['timeout_s']:g}: seconds > 0")
    if opts.get("parallelism") is not None and opts["parallelism"] <= 0:
        raise FlagError(f"--parallel {opts['parallelism']}: trials at once, >= 1")
    if opts.get("sampler") == "grid" and "trials" not in opts:
        opts["trials"] = None  # the whole grid
    return spec
