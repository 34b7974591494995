"""How the CLI words backtests, optimizations, strategies and configurations.

A backtest's stats always sit beside buy-and-hold over the same bars (what holding would have
earned); an optimization's best parameters beside their out-of-sample stats and the overfit
verdict; undefined stats (no trades) read ``-`` rather than ``nan``.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence

from services.report import data_source, table, when
from shared.client import StrategyInfo
from shared.results import BacktestSummary, ConfigurationRef, OptimizationSummary

# (label, stat, format): what the end-of-run table shows, in order.
STATS: tuple[tuple[str, str, str], ...] = (
    ("Return", "Return [%]", "{:,.2f} %"),
    ("Buy & Hold", "Buy & Hold Return [%]", "{:,.2f} %"),
    ("Return (ann.)", "Return (Ann.) [%]", "{:,.2f} %"),
    ("Sharpe", "Sharpe Ratio", "{:.2f}"),
    ("Sortino", "Sortino Ratio", "{:.2f}"),
    ("Calmar", "Calmar Ratio", "{:.2f}"),
    ("Max DD", "Max. Drawdown [%]", "{:,.2f} %"),
    ("# Trades", "# Trades", "{:,.0f}"),
    ("Win Rate", "Win Rate [%]", "{:.1f} %"),
    ("Profit Factor", "Profit Factor", "{:.2f}"),
    ("SQN", "SQN", "{:.2f}"),
    ("Exposure", "Exposure Time [%]", "{:.1f} %"),
)


def stat_text(stats: Mapping[str, float], name: str, fmt: str = "{:.4g}") -> str:
    value = stats.get(name)
    if value is None or not math.isfinite(value):
        return "-"
    return fmt.format(value)


def params_text(params: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "defaults"


def stats_table(stats: Mapping[str, float]) -> list[str]:
    """Return vs Buy & Hold first, then risk and trade stats, one row each."""
    rows = [[label, stat_text(stats, name, fmt)] for label, name, fmt in STATS]
    ret, hold = stats.get("Return [%]"), stats.get("Buy & Hold Return [%]")
    if ret is not None and hold is not None and math.isfinite(ret) and math.isfinite(hold):
        rows[1][1] += f"   (strategy {ret - hold:+,.2f} points)"
    return table(["STAT", "VALUE"], rows)


def backtest_summary(b: BacktestSummary) -> list[str]:
    """What ``trainwire backtest`` prints at the end."""
    what = b.model or f"{b.strategy} ({params_text(b.params)})"
    lines = [f"Backtest {what} on {b.symbol} {b.timeframe} · {b.candles:,} candles"]
    lines.append(f"Data: {data_source(b.data)}")
    lines += stats_table(b.stats)
    if b.trades_total > len(b.trades):
        lines.append(f"({len(b.trades):,} of {b.trades_total:,} trades in the result)")
    return lines


def optimization_summary(o: OptimizationSummary) -> list[str]:
    """What ``trainwire optimize`` prints at the end: best params, IS/OOS, verdict, where."""
    direction = "lowest" if o.minimize else "highest"
    complete = sum(1 for t in o.trials if t.state == "complete")
    seed = f", seed {o.seed}" if o.seed is not None else ""
    lines = [
        f"Best {o.strategy} parameters ({direction} {o.objective} "
        f"{stat_text({'s': o.best_score}, 's')}; {o.sampler}, {complete} of {len(o.trials)} "
        f"trials complete{seed}):"
    ]
    lines += [
        f"  {line}"
        for line in table(["PARAM", "VALUE"], [[k, v] for k, v in o.best_params.items()])
    ]
    lines.append(f"Data: {data_source(o.data)}")
    names = [(label, name, fmt) for label, name, fmt in STATS if name in o.in_sample]
    if o.out_of_sample:
        rows = [
            [label, stat_text(o.in_sample, name, fmt), stat_text(o.out_of_sample, name, fmt)]
            for label, name, fmt in names
        ]
        lines.append(f"In-sample vs out-of-sample ({len(o.windows)} walk-forward windows):")
        lines += [f"  {line}" for line in table(["STAT", "IN-SAMPLE", "OUT-OF-SAMPLE"], rows)]
        lines += textwrap.wrap(f"Verdict: {overfit_verdict(o)}", 90, subsequent_indent="  ")
    else:
        rows = [[label, stat_text(o.in_sample, name, fmt)] for label, name, fmt in names]
        lines.append("In-sample (no walk-forward: out-of-sample not measured):")
        lines += [f"  {line}" for line in table(["STAT", "IN-SAMPLE"], rows)]
    c = o.configuration
    if c is not None and c.name:
        lines.append(f"Configuration stored: {c.name} (sha256 {c.sha256[:12]}…)")
        lines.append(f"  download it: trainwire configurations download {c.name}")
    return lines


def overfit_verdict(o: OptimizationSummary) -> str:
    ins = stat_text(o.in_sample, o.objective)
    oos = stat_text(o.out_of_sample, o.objective)
    flagged = sum(1 for w in o.windows if w.overfit)
    where = f"{flagged} of {len(o.windows)} windows" if o.windows else "the windows"
    if o.overfit:
        return (
            f"OVERFIT: out-of-sample {o.objective} {oos} falls far below in-sample {ins} "
            f"({where} flagged); expect live results nearer the out-of-sample figure"
        )
    return f"holds up out of sample: {o.objective} {oos} out-of-sample vs {ins} in-sample"


def strategy_lines(strategies: Sequence[StrategyInfo]) -> list[str]:
    """``trainwire strategies``: each strategy, its description and a table of parameters."""
    lines: list[str] = []
    for s in strategies:
        lines.append(s.name)
        lines += textwrap.wrap(s.description, 88, initial_indent="  ", subsequent_indent="  ")
        rows = []
        for p in s.params:
            if p.choices:
                span = ",".join(p.choices)
            elif p.low is not None or p.high is not None:
                span = f"{_num(p.low)}..{_num(p.high)}" + (
                    f" step {_num(p.step)}" if p.step is not None else ""
                )
            else:
                span = "-"
            rows.append([p.name, p.type, p.default, span, p.description])
        lines += [
            f"  {line}" for line in table(["PARAM", "TYPE", "DEFAULT", "RANGE", "MEANING"], rows)
        ]
        if s.constraints:
            lines.append(f"  constraints: {'; '.join(s.constraints)}")
        lines.append("")
    return lines[:-1] if lines else ["no strategies"]


def _num(value: float | None) -> str:
    if value is None:
        return "?"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


CONFIGURATION_HEADERS = ["NAME", "OBJECTIVE", "IN-SAMPLE", "OUT-OF-SAMPLE", "PARAMS", "CREATED"]


def configuration_row(c: ConfigurationRef) -> list[str]:
    return [
        c.name,
        c.objective or "-",
        stat_text({"s": c.in_sample_score}, "s"),
        stat_text({"s": c.out_of_sample_score}, "s"),
        params_text(c.params),
        when(c.created_at, with_time=False),
    ]


def configuration_lines(c: ConfigurationRef) -> list[str]:
    rows = [
        ("strategy", f"{c.strategy} (version {c.version})"),
        ("market", f"{' '.join(c.symbols) or '-'} {' '.join(c.timeframes)}".strip()),
        ("params", params_text(c.params)),
        ("objective", c.objective or "-"),
        ("in-sample", stat_text({"s": c.in_sample_score}, "s")),
        ("out-of-sample", stat_text({"s": c.out_of_sample_score}, "s")),
        ("created", f"{when(c.created_at)} UTC" + (f" by job {c.job_id}" if c.job_id else "")),
        ("file", f"{c.size_bytes:,} bytes, sha256 {c.sha256}"),
    ]
    width = max(len(k) for k, _ in rows)
    return [c.name] + [f"  {k:<{width}}  {v}" for k, v in rows]
