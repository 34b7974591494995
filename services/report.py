"""How the CLI words results: a model beside its baseline, the data it came from, tables that
fit their content.

Every model shown names its data source and, when the model records one, its assessment: test
accuracy, macro F1, the majority-class baseline, the lift over it and the verdict in words.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from shared.client import ModelInfo
from shared.jobs import DataProvenance, ModelAssessment, ModelRef, TrainResult
from shared.nodes import NodeStatus


def when(seconds: float, *, with_time: bool = True) -> str:
    """A UTC time for people: ``2018-02-07 15:00`` (``-`` when unknown)."""
    if not seconds:
        return "-"
    stamp = datetime.fromtimestamp(seconds, UTC)
    return stamp.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")


def bar_times(start: float, end: float) -> tuple[str, str]:
    """A range's ends, dates only when both fall at midnight UTC (daily bars)."""
    midnight = all(
        datetime.fromtimestamp(t, UTC).time() == datetime.min.time() for t in (start, end)
    )
    return when(start, with_time=not midnight), when(end, with_time=not midnight)


def _span(start: float, end: float) -> str:
    first, last = bar_times(start, end)
    return f"{first} → {last}"


def data_source(data: DataProvenance | None) -> str:
    """One line: ``directory fx · 2017-04-19 → 2018-02-07 · 5,000 rows`` (source always named)."""
    if data is None:
        return "data source not recorded"
    place = f"{data.source} {data.location}".strip()
    parts = [place]
    if data.series:
        parts.append(_span(data.start, data.end))
        parts.append(f"{data.rows:,} rows")
    return " · ".join(parts)


def data_lines(data: DataProvenance | None) -> list[str]:
    """The source and each series: file, range, rows, what it was resampled from."""
    if data is None:
        return ["data source not recorded"]
    lines = [data_source(data)]
    for s in data.series:
        origin = s.file or data.source
        if s.resampled_from:
            origin += f" (from {s.resampled_from})"
        lines.append(
            f"  {s.symbol} {s.timeframe}: {origin} · {_span(s.start, s.end)} · {s.rows:,} rows"
        )
    if data.source != "synthetic" and data.timezone:
        lines.append(f"  timestamps without a zone read as {data.timezone}")
    return lines


def support_text(support: Mapping[str, int]) -> str:
    return ", ".join(f"{label} {count:,}" for label, count in support.items())


def verdict(a: ModelAssessment) -> str:
    """The assessment's verdict, or one made from its numbers when it has none."""
    if a.verdict:
        return a.verdict
    versus = f"({a.accuracy:.3f} vs {a.baseline_accuracy:.3f})"
    what = f"always predicting {a.baseline_class}" if a.baseline_class else "the baseline"
    if a.beats_baseline:
        return f"beats {what} by {a.lift_points:.1f} points {versus}"
    return f"does not beat {what} {versus}"


def assessment_lines(a: ModelAssessment | None, test_metrics: Mapping[str, float]) -> list[str]:
    """Accuracy, macro F1, per-class support, the baseline, the lift and the verdict."""
    if a is None:
        accuracy = test_metrics.get("accuracy")
        shown = f"test accuracy {accuracy:.3f}; " if accuracy is not None else ""
        return [f"{shown}no baseline recorded: this model cannot be judged against one"]
    lines = [f"test accuracy {a.accuracy:.3f} · macro F1 {a.macro_f1:.3f}"]
    if a.class_support:
        lines.append(f"test support: {support_text(a.class_support)}")
    baseline = f"always {a.baseline_class}" if a.baseline_class else "majority class"
    lines.append(
        f"baseline ({baseline}) {a.baseline_accuracy:.3f} · lift {a.lift_points:+.1f} points"
    )
    lines += textwrap.wrap(f"verdict: {verdict(a)}", 70, subsequent_indent="  ")
    return lines


def trading_lines(
    stats: Mapping[str, float], symbol: str, timeframe: str, candles: int, trades: int
) -> list[str]:
    """``return 20.23 % vs buy & hold 27.51 %: below holding``, then where and how (each line
    fits 80 columns with its label)."""

    def num(name: str, fmt: str) -> str:
        value = stats.get(name)
        return "n/a" if value is None or value != value else format(value, fmt)

    ours, hold = stats.get("Return [%]", float("nan")), stats.get("Buy & Hold Return [%]", 0.0)
    if ours != ours or hold != hold:
        verdict = "no comparison"
    else:
        verdict = "beats holding" if ours > hold else "below holding"
    return [
        f"return {num('Return [%]', '.2f')} % vs buy & hold {num('Buy & Hold Return [%]', '.2f')} %"
        f": {verdict}",
        f"{symbol} {timeframe} test split: {candles:,} bars, {trades:,} trades",
        f"Sharpe {num('Sharpe Ratio', '.2f')} · max drawdown {num('Max. Drawdown [%]', '.1f')} %",
    ]


def _backtest_line(result: TrainResult) -> list[str]:
    b = result.backtest
    if b is None:
        return []
    lines = trading_lines(b.stats, b.symbol, b.timeframe, b.candles, b.trades_total)
    return [f"Trading: {line}" if i == 0 else f"         {line}" for i, line in enumerate(lines)]


def _metadata_trading(metadata: Mapping[str, object]) -> list[str]:
    b = metadata.get("backtest")
    if not isinstance(b, dict) or not isinstance(b.get("stats"), dict):
        return []
    stats = {str(k): float(v) for k, v in b["stats"].items() if isinstance(v, int | float)}
    return trading_lines(
        stats,
        str(b.get("symbol", "")),
        str(b.get("timeframe", "")),
        int(b.get("candles", 0)),
        int(b.get("trades", 0)),
    )


def result_summary(result: TrainResult) -> list[str]:
    """What ``trainwire train`` prints once a model is stored."""
    lines: list[str] = []
    model = result.model
    if model is not None:
        lines.append(f"Model stored: {model.name} (v{model.version}, {model.size_bytes:,} bytes)")
        lines.append(f"sha256: {model.sha256}")
    data = result.data or (model.data if model else None)
    assessment = result.assessment or (model.assessment if model else None)
    lines += [f"Data: {line}" if i == 0 else line for i, line in enumerate(data_lines(data))]
    lines += [
        f"Result: {line}" if i == 0 else f"        {line}"
        for i, line in enumerate(assessment_lines(assessment, result.test_metrics))
    ]
    lines += _backtest_line(result)
    return lines


def model_summary(info: ModelInfo) -> list[str]:
    """``trainwire models show``: the model, its data, its quality, its features."""
    ref = info.ref
    rows: list[tuple[str, str]] = [
        ("strategy", f"{ref.strategy} (version {ref.version})"),
        ("symbols", " ".join(ref.symbols) or "-"),
        ("timeframes", " ".join(ref.timeframes) or "-"),
        (
            "created",
            f"{when(ref.created_at)} UTC" + (f" by job {ref.job_id}" if ref.job_id else ""),
        ),
        ("weights", f"{ref.size_bytes:,} bytes, sha256 {ref.sha256}"),
    ]
    rows += _labelled("data", data_lines(ref.data))
    rows += _labelled("result", assessment_lines(ref.assessment, info.test_metrics))
    rows += _labelled("trading", _metadata_trading(info.metadata))
    if info.training_metrics:
        rows.append(("training", _metrics(info.training_metrics)))
    if info.feature_names:
        names = f"{len(info.feature_names)}: {', '.join(info.feature_names)}"
        rows += _labelled("features", textwrap.wrap(names, 76, break_on_hyphens=False))
    width = max(len(k) for k, _ in rows)
    return (
        [ref.name]
        + [f"  {k:<{width}}  {v}" for k, v in rows]
        + [f"(everything: trainwire models show {ref.name} --json)"]
    )


def _labelled(label: str, lines: Sequence[str]) -> list[tuple[str, str]]:
    return [(label if i == 0 else "", line.strip()) for i, line in enumerate(lines)]


def _metrics(metrics: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items()))


def model_row(m: ModelRef) -> list[str]:
    a = m.assessment
    if a is None:
        quality = ["-", "-", "-", "-"]
    else:
        baseline = f"{a.baseline_class} {a.baseline_accuracy:.3f}".strip()
        quality = [f"{a.accuracy:.3f}", f"{a.macro_f1:.3f}", baseline, f"{a.lift_points:+.1f}"]
    return [
        m.name,
        *quality,
        trading_cell(m.trading),
        data_cell(m.data),
        when(m.created_at, with_time=False),
    ]


def trading_cell(trading: Mapping[str, float]) -> str:
    """``+4.2%/+6.3%``: the test-split backtest's return beside buy-and-hold's."""
    ours, hold = trading.get("Return [%]"), trading.get("Buy & Hold Return [%]")
    if ours is None or hold is None or ours != ours or hold != hold:
        return "-"
    return f"{ours:+.1f}%/{hold:+.1f}%"


def data_cell(data: DataProvenance | None) -> str:
    """The data source for a table: ``directory fx 2017-04-19→2018-02-07, 5,000 rows``."""
    if data is None:
        return "not recorded"
    place = f"{data.source} {data.location}".strip()
    if not data.series:
        return place
    first, last = when(data.start, with_time=False), when(data.end, with_time=False)
    return f"{place} {first}→{last}, {data.rows:,} rows"


MODEL_HEADERS = ["NAME", "ACC", "F1", "BASELINE", "LIFT", "RETURN/HOLD", "DATA", "CREATED"]


def node_row(n: NodeStatus) -> list[str]:
    device = f"{n.info.device.kind.value} {n.info.device.name}".strip() if n.info else "?"
    slots = f"{n.slots_used}/{n.info.slots}" if n.info else f"{n.slots_used}/?"
    return [n.address, n.source, n.health.value, device, slots, f"{n.latency_ms:.1f}ms", n.detail]


NODE_HEADERS = ["ADDRESS", "SOURCE", "HEALTH", "DEVICE", "SLOTS", "PROBE", "DETAIL"]


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Columns as wide as their widest cell (nothing cut), two spaces apart; the last column
    is not padded."""
    body = [list(r) for r in rows]
    widths = [max([len(h), *(len(r[i]) for r in body)]) for i, h in enumerate(headers)]
    out = []
    for cells in [list(headers), *body]:
        padded = [c.ljust(w) for c, w in zip(cells[:-1], widths[:-1], strict=True)]
        out.append("  ".join([*padded, cells[-1]]).rstrip())
    return out
