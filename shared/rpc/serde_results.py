"""Protobuf ↔ dataclass translation of results: timestamps, data provenance, backtests,
optimizations, optimizer progress and stored configurations (``shared.results``).

``shared.rpc.serde`` re-exports what it used to define here (``ts_to_proto``,
``provenance_to_proto``, ...); import from either.
"""

from __future__ import annotations

import math

from google.protobuf.timestamp_pb2 import Timestamp

from shared.provenance import DataProvenance, SeriesProvenance
from shared.results import (
    MAX_EQUITY_POINTS,
    MAX_RESULT_TRADES,
    BacktestSummary,
    ConfigurationRef,
    OptimizationSummary,
    OptimizerProgress,
    TradeRecord,
    TrialSummary,
    WindowSummary,
)
from shared.rpc.v1 import progress_pb2 as ppb
from shared.rpc.v1 import strategy_pb2 as spb

# --- timestamps ---


def ts_to_proto(seconds: float) -> Timestamp:
    ts = Timestamp()
    if seconds:
        ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def ts_from_proto(ts: Timestamp) -> float:
    return float(ts.ToNanoseconds()) / 1e9


# --- data provenance ---


def provenance_to_proto(data: DataProvenance) -> ppb.DataProvenance:
    return ppb.DataProvenance(
        source=data.source,
        location=data.location,
        timezone=data.timezone,
        series=[
            ppb.SeriesProvenance(
                symbol=s.symbol,
                timeframe=s.timeframe,
                file=s.file,
                start=ts_to_proto(s.start),
                end=ts_to_proto(s.end),
                rows=s.rows,
                resampled_from=s.resampled_from,
            )
            for s in data.series
        ],
    )


def provenance_from_proto(msg: ppb.DataProvenance) -> DataProvenance:
    return DataProvenance(
        source=msg.source,
        location=msg.location,
        timezone=msg.timezone,
        series=tuple(
            SeriesProvenance(
                symbol=s.symbol,
                timeframe=s.timeframe,
                file=s.file,
                start=ts_from_proto(s.start),
                end=ts_from_proto(s.end),
                rows=s.rows,
                resampled_from=s.resampled_from,
            )
            for s in msg.series
        ),
    )


# --- backtests ----------------------------------------------------------------------------------


def trade_to_proto(t: TradeRecord) -> ppb.Trade:
    return ppb.Trade(
        entry_bar=t.entry_bar,
        exit_bar=t.exit_bar,
        entry_time=ts_to_proto(t.entry_time),
        exit_time=ts_to_proto(t.exit_time),
        entry_price=t.entry_price,
        exit_price=t.exit_price,
        size=t.size,
        pnl=t.pnl,
        return_pct=t.return_pct,
        duration_seconds=t.duration_s,
        exit_reason=t.exit_reason,
    )


def trade_from_proto(m: ppb.Trade) -> TradeRecord:
    return TradeRecord(
        entry_bar=m.entry_bar,
        exit_bar=m.exit_bar,
        entry_time=ts_from_proto(m.entry_time),
        exit_time=ts_from_proto(m.exit_time),
        entry_price=m.entry_price,
        exit_price=m.exit_price,
        size=m.size,
        pnl=m.pnl,
        return_pct=m.return_pct,
        duration_s=m.duration_seconds,
        exit_reason=m.exit_reason,
    )


_SETTING_FIELDS = (
    "initial_cash",
    "commission_pct",
    "commission_fixed",
    "slippage_bps",
    "size",
    "stop_loss_pct",
    "take_profit_pct",
)


def _settings_to_proto(settings: dict[str, float]) -> spb.BacktestSettings:
    msg = spb.BacktestSettings()
    for name in _SETTING_FIELDS:
        if name in settings and math.isfinite(settings[name]):
            setattr(msg, name, settings[name])
    if "allow_short" in settings:
        msg.allow_short = bool(settings["allow_short"])
    if "units_sizing" in settings:
        msg.sizing = spb.SIZING_MODE_UNITS if settings["units_sizing"] else spb.SIZING_MODE_FRACTION
    return msg


def _settings_from_proto(msg: spb.BacktestSettings) -> dict[str, float]:
    out = {
        name: float(getattr(msg, name))
        for name in _SETTING_FIELDS
        if name in ("commission_pct", "commission_fixed", "slippage_bps") or msg.HasField(name)  # type: ignore[arg-type]
    }
    if msg.HasField("allow_short"):
        out["allow_short"] = float(msg.allow_short)
    if msg.sizing != spb.SIZING_MODE_UNSPECIFIED:
        out["units_sizing"] = float(msg.sizing == spb.SIZING_MODE_UNITS)
    return out


def backtest_to_proto(b: BacktestSummary) -> ppb.BacktestResult:
    msg = ppb.BacktestResult(
        strategy=b.strategy,
        params=dict(b.params),
        model=b.model,
        symbol=b.symbol,
        timeframe=b.timeframe,
        stats=dict(b.stats),
        trades=[trade_to_proto(t) for t in b.trades[:MAX_RESULT_TRADES]],
        trades_total=b.trades_total,
        equity=[
            ppb.EquityPoint(time=ts_to_proto(t), equity=e) for t, e in b.equity[-MAX_EQUITY_POINTS:]
        ],
        candles=b.candles,
    )
    if b.data is not None:
        msg.data.CopyFrom(provenance_to_proto(b.data))
    msg.settings.CopyFrom(_settings_to_proto(dict(b.settings)))
    return msg


def backtest_from_proto(m: ppb.BacktestResult) -> BacktestSummary:
    return BacktestSummary(
        strategy=m.strategy,
        params=dict(m.params),
        model=m.model,
        symbol=m.symbol,
        timeframe=m.timeframe,
        stats=dict(m.stats),
        trades=tuple(trade_from_proto(t) for t in m.trades),
        trades_total=m.trades_total,
        equity=tuple((ts_from_proto(p.time), p.equity) for p in m.equity),
        candles=m.candles,
        data=provenance_from_proto(m.data) if m.HasField("data") else None,
        settings=_settings_from_proto(m.settings),
    )


# --- optimizations ------------------------------------------------------------------------------


def optimizer_to_proto(o: OptimizerProgress) -> ppb.OptimizerProgress:
    return ppb.OptimizerProgress(
        iteration=o.iteration,
        total_iterations=o.total_iterations,
        current_score=o.current_score,
        best_score=o.best_score,
        best_params=dict(o.best_params),
        current_params=dict(o.current_params),
        objective=o.objective,
        window=o.window,
        total_windows=o.total_windows,
    )


def optimizer_from_proto(m: ppb.OptimizerProgress) -> OptimizerProgress:
    return OptimizerProgress(
        iteration=m.iteration,
        total_iterations=m.total_iterations,
        current_score=m.current_score,
        best_score=m.best_score,
        best_params=dict(m.best_params),
        current_params=dict(m.current_params),
        objective=m.objective,
        window=m.window,
        total_windows=m.total_windows,
    )


def configuration_to_proto(c: ConfigurationRef) -> ppb.ConfigurationRef:
    return ppb.ConfigurationRef(
        name=c.name,
        strategy=c.strategy,
        version=c.version,
        sha256=c.sha256,
        size_bytes=c.size_bytes,
        symbols=list(c.symbols),
        timeframes=list(c.timeframes),
        created_at=ts_to_proto(c.created_at),
        job_id=c.job_id,
        params=dict(c.params),
        objective=c.objective,
        in_sample_score=c.in_sample_score,
        out_of_sample_score=c.out_of_sample_score,
    )


def configuration_from_proto(m: ppb.ConfigurationRef) -> ConfigurationRef:
    return ConfigurationRef(
        name=m.name,
        strategy=m.strategy,
        version=m.version,
        sha256=m.sha256,
        size_bytes=m.size_bytes,
        symbols=tuple(m.symbols),
        timeframes=tuple(m.timeframes),
        created_at=ts_from_proto(m.created_at),
        job_id=m.job_id,
        params=dict(m.params),
        objective=m.objective,
        in_sample_score=m.in_sample_score,
        out_of_sample_score=m.out_of_sample_score,
    )


def _window_to_proto(w: WindowSummary) -> ppb.WalkForwardWindow:
    return ppb.WalkForwardWindow(
        index=w.index,
        train_start=ts_to_proto(w.train_start),
        train_end=ts_to_proto(w.train_end),
        test_start=ts_to_proto(w.test_start),
        test_end=ts_to_proto(w.test_end),
        best_params=dict(w.best_params),
        in_sample=dict(w.in_sample),
        out_of_sample=dict(w.out_of_sample),
        overfit=w.overfit,
    )


def _window_from_proto(m: ppb.WalkForwardWindow) -> WindowSummary:
    return WindowSummary(
        index=m.index,
        train_start=ts_from_proto(m.train_start),
        train_end=ts_from_proto(m.train_end),
        test_start=ts_from_proto(m.test_start),
        test_end=ts_from_proto(m.test_end),
        best_params=dict(m.best_params),
        in_sample=dict(m.in_sample),
        out_of_sample=dict(m.out_of_sample),
        overfit=m.overfit,
    )


def optimization_to_proto(o: OptimizationSummary) -> ppb.OptimizeResult:
    msg = ppb.OptimizeResult(
        strategy=o.strategy,
        best_params=dict(o.best_params),
        best_score=o.best_score,
        objective=spb.Objective(stat=o.objective, minimize=o.minimize),
        sampler=o.sampler,
        in_sample=dict(o.in_sample),
        out_of_sample=dict(o.out_of_sample),
        windows=[_window_to_proto(w) for w in o.windows],
        overfit=o.overfit,
        trials=[
            ppb.TrialSummary(
                number=t.number,
                params=dict(t.params),
                score=t.score,
                state=t.state,
                duration_seconds=t.duration_s,
            )
            for t in o.trials
        ],
        configuration_json=o.configuration_json,
    )
    if o.configuration is not None:
        msg.configuration.CopyFrom(configuration_to_proto(o.configuration))
    if o.data is not None:
        msg.data.CopyFrom(provenance_to_proto(o.data))
    if o.seed is not None:
        msg.seed = o.seed
    return msg


def optimization_from_proto(m: ppb.OptimizeResult) -> OptimizationSummary:
    return OptimizationSummary(
        strategy=m.strategy,
        best_params=dict(m.best_params),
        best_score=m.best_score,
        objective=m.objective.stat,
        minimize=m.objective.minimize,
        sampler=m.sampler,
        in_sample=dict(m.in_sample),
        out_of_sample=dict(m.out_of_sample),
        windows=tuple(_window_from_proto(w) for w in m.windows),
        overfit=m.overfit,
        trials=tuple(
            TrialSummary(
                number=t.number,
                params=dict(t.params),
                score=t.score,
                state=t.state,
                duration_s=t.duration_seconds,
            )
            for t in m.trials
        ),
        configuration=(
            configuration_from_proto(m.configuration) if m.HasField("configuration") else None
        ),
        data=provenance_from_proto(m.data) if m.HasField("data") else None,
        seed=m.seed if m.HasField("seed") else None,
        configuration_json=m.configuration_json,
    )
