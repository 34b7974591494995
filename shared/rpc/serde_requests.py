"""Protobuf ↔ dataclass translation of job requests of every kind, and the job-kind seam.

``backtest_request_*`` / ``optimization_request_*`` translate the two new kinds (training's is
``shared.rpc.serde.request_*``). The seam every kind goes through:

- ``job_request_from_trainer_job`` / ``trainer_job_to_proto``: the one request field a
  ``TrainerJob`` carries, whatever the kind;
- ``request_to_stored`` / ``request_from_stored``: ``(kind, bytes)`` as a job store keeps them;
- ``kind_to_proto``: ``Job.kind`` on the wire.

Proto3 zero values become the documented defaults here, as for training, so a grpcurl user can
send ``{"symbols":["GOOG"],"timeframes":["1d"],"strategy":"sma_crossover","data":{"path":"."}}``.
A value the domain types refuse (``BacktestSettings`` checks its own ranges) raises
``InvalidArgumentError`` naming the field.
"""

from __future__ import annotations

from typing import Literal

from shared import spec
from shared.backtest import BacktestSettings, Costs, Sizing
from shared.job_requests import BacktestRequest, JobRequest, OptimizationRequest
from shared.jobs import JobKind
from shared.optimize import Objective, OptimizerSettings, ParamRange, WalkForward
from shared.rpc import serde
from shared.rpc.v1 import progress_pb2 as ppb
from shared.rpc.v1 import strategy_pb2 as spb
from shared.rpc.v1 import trainer_pb2 as tpb

DEFAULT_TRIALS = 50
"""The trial budget when a request gives neither ``trials`` nor ``timeout_seconds`` (the grid
sampler then runs the whole grid)."""

# --- backtest settings --------------------------------------------------------------------------


def settings_from_proto(msg: spb.BacktestSettings) -> BacktestSettings:
    default = BacktestSettings()
    units = msg.sizing == spb.SIZING_MODE_UNITS
    if msg.sizing not in (
        spb.SIZING_MODE_UNSPECIFIED,
        spb.SIZING_MODE_FRACTION,
        spb.SIZING_MODE_UNITS,
    ):
        raise spec.SpecError("settings.sizing", f"unknown sizing mode {msg.sizing}")
    return BacktestSettings(
        initial_cash=msg.initial_cash if msg.HasField("initial_cash") else default.initial_cash,
        costs=Costs(
            commission_pct=msg.commission_pct,
            commission_fixed=msg.commission_fixed,
            slippage_bps=msg.slippage_bps,
        ),
        sizing=Sizing(
            mode="units" if units else "fraction",
            value=msg.size if msg.HasField("size") else 1.0,
        ),
        allow_short=msg.allow_short if msg.HasField("allow_short") else True,
        stop_loss_pct=msg.stop_loss_pct if msg.HasField("stop_loss_pct") else None,
        take_profit_pct=msg.take_profit_pct if msg.HasField("take_profit_pct") else None,
    )


def settings_to_proto(s: BacktestSettings) -> spb.BacktestSettings:
    msg = spb.BacktestSettings(
        initial_cash=s.initial_cash,
        commission_pct=s.costs.commission_pct,
        commission_fixed=s.costs.commission_fixed,
        slippage_bps=s.costs.slippage_bps,
        sizing=spb.SIZING_MODE_UNITS if s.sizing.mode == "units" else spb.SIZING_MODE_FRACTION,
        size=s.sizing.value,
        allow_short=s.allow_short,
    )
    if s.stop_loss_pct is not None:
        msg.stop_loss_pct = s.stop_loss_pct
    if s.take_profit_pct is not None:
        msg.take_profit_pct = s.take_profit_pct
    return msg


# --- backtest requests --------------------------------------------------------------------------


def backtest_request_from_proto(msg: spb.BacktestRequest) -> BacktestRequest:
    symbols = tuple(msg.symbols)
    return BacktestRequest(
        request_id=msg.request_id,
        symbols=symbols,
        timeframes=tuple(msg.timeframes),
        strategy=msg.strategy,
        params=dict(msg.params),
        model=msg.model,
        settings=settings_from_proto(msg.settings),
        data=serde.data_from_proto(msg.data, symbols=symbols),
        placement=serde.placement_from_proto(msg.placement),
    )


def backtest_request_to_proto(req: BacktestRequest) -> spb.BacktestRequest:
    return spb.BacktestRequest(
        request_id=req.request_id,
        symbols=list(req.symbols),
        timeframes=list(req.timeframes),
        strategy=req.strategy,
        params=dict(req.params),
        model=req.model,
        settings=settings_to_proto(req.settings),
        data=serde.data_to_proto(req.data),
        placement=serde.placement_to_proto(req.placement),
    )


# --- optimization requests ----------------------------------------------------------------------

_PARAM_TYPES: dict[int, Literal["int", "float", "categorical"]] = {
    spb.PARAM_TYPE_INT: "int",
    spb.PARAM_TYPE_FLOAT: "float",
    spb.PARAM_TYPE_CATEGORICAL: "categorical",
    spb.PARAM_TYPE_BOOL: "categorical",
}
_PARAM_TYPES_TO_PB = {
    "int": spb.PARAM_TYPE_INT,
    "float": spb.PARAM_TYPE_FLOAT,
    "categorical": spb.PARAM_TYPE_CATEGORICAL,
}
_SAMPLERS: dict[int, Literal["grid", "random", "tpe", "gp", "cmaes"]] = {
    spb.SAMPLER_UNSPECIFIED: "tpe",
    spb.SAMPLER_GRID: "grid",
    spb.SAMPLER_RANDOM: "random",
    spb.SAMPLER_TPE: "tpe",
    spb.SAMPLER_GP: "gp",
    spb.SAMPLER_CMAES: "cmaes",
}
_SAMPLERS_TO_PB = {
    "grid": spb.SAMPLER_GRID,
    "random": spb.SAMPLER_RANDOM,
    "tpe": spb.SAMPLER_TPE,
    "gp": spb.SAMPLER_GP,
    "cmaes": spb.SAMPLER_CMAES,
}


def _range_from_proto(i: int, msg: spb.ParamRange) -> ParamRange:
    kind = _PARAM_TYPES.get(msg.type)
    if kind is None:
        raise spec.SpecError(
            f"space[{i}].type", "give the range's type: PARAM_TYPE_INT, _FLOAT or _CATEGORICAL"
        )
    choices = tuple(msg.choices)
    if msg.type == spb.PARAM_TYPE_BOOL and not choices:
        choices = ("false", "true")
    return ParamRange(
        name=msg.name,
        type=kind,
        low=msg.low if msg.HasField("low") else None,
        high=msg.high if msg.HasField("high") else None,
        step=msg.step if msg.HasField("step") else None,
        log=msg.log,
        choices=choices,
    )


def _range_to_proto(r: ParamRange) -> spb.ParamRange:
    msg = spb.ParamRange(
        name=r.name, type=_PARAM_TYPES_TO_PB[r.type], log=r.log, choices=list(r.choices)
    )
    if r.low is not None:
        msg.low = r.low
    if r.high is not None:
        msg.high = r.high
    if r.step is not None:
        msg.step = r.step
    return msg


def _walk_forward_from_proto(msg: spb.WalkForwardSpec) -> WalkForward | None:
    if not (msg.train_bars or msg.test_bars or msg.gap_bars or msg.anchored):
        return None
    for name in ("train_bars", "test_bars"):
        if getattr(msg, name) <= 0:
            raise spec.SpecError(
                f"walk_forward.{name}",
                "walk-forward needs train_bars and test_bars > 0 (bars per window)",
            )
    if msg.gap_bars < 0:
        raise spec.SpecError("walk_forward.gap_bars", "must be >= 0")
    if msg.HasField("trials_per_window") and msg.trials_per_window <= 0:
        raise spec.SpecError("walk_forward.trials_per_window", "must be > 0, or unset")
    return WalkForward(
        train_bars=msg.train_bars,
        test_bars=msg.test_bars,
        gap_bars=msg.gap_bars,
        anchored=msg.anchored,
        trials_per_window=msg.trials_per_window if msg.HasField("trials_per_window") else None,
    )


def _walk_forward_to_proto(w: WalkForward | None) -> spb.WalkForwardSpec:
    if w is None:
        return spb.WalkForwardSpec()
    msg = spb.WalkForwardSpec(
        train_bars=w.train_bars, test_bars=w.test_bars, gap_bars=w.gap_bars, anchored=w.anchored
    )
    if w.trials_per_window is not None:
        msg.trials_per_window = w.trials_per_window
    return msg


def optimization_request_from_proto(msg: spb.OptimizeRequest) -> OptimizationRequest:
    symbols = tuple(msg.symbols)
    sampler = _SAMPLERS.get(msg.sampler)
    if sampler is None:
        raise spec.SpecError("sampler", f"unknown sampler {msg.sampler}")
    timeout = msg.timeout_seconds if msg.HasField("timeout_seconds") else None
    if msg.HasField("trials"):
        trials: int | None = msg.trials
    else:  # the whole grid; another sampler's budget is the time budget, else DEFAULT_TRIALS
        trials = None if timeout is not None or sampler == "grid" else DEFAULT_TRIALS
    if msg.parallelism < 0:
        raise spec.SpecError("parallelism", "must be >= 0 (0 or 1 = sequential trials)")
    return OptimizationRequest(
        request_id=msg.request_id,
        symbols=symbols,
        timeframes=tuple(msg.timeframes),
        strategy=msg.strategy,
        space=tuple(_range_from_proto(i, r) for i, r in enumerate(msg.space)),
        constraints=tuple(msg.constraints),
        objective=Objective(
            stat=msg.objective.stat or Objective().stat,
            direction="minimize" if msg.objective.minimize else "maximize",
        ),
        optimizer=OptimizerSettings(
            sampler=sampler,
            trials=trials,
            timeout_s=timeout,
            seed=msg.seed if msg.HasField("seed") else None,
            parallelism=max(1, msg.parallelism),
            walk_forward=_walk_forward_from_proto(msg.walk_forward),
        ),
        settings=settings_from_proto(msg.settings),
        fixed_params=dict(msg.fixed_params),
        data=serde.data_from_proto(msg.data, symbols=symbols),
        placement=serde.placement_from_proto(msg.placement),
    )


def optimization_request_to_proto(req: OptimizationRequest) -> spb.OptimizeRequest:
    o = req.optimizer
    msg = spb.OptimizeRequest(
        request_id=req.request_id,
        symbols=list(req.symbols),
        timeframes=list(req.timeframes),
        strategy=req.strategy,
        space=[_range_to_proto(r) for r in req.space],
        constraints=list(req.constraints),
        objective=spb.Objective(
            stat=req.objective.stat, minimize=req.objective.direction == "minimize"
        ),
        sampler=_SAMPLERS_TO_PB[o.sampler],
        parallelism=o.parallelism,
        walk_forward=_walk_forward_to_proto(o.walk_forward),
        settings=settings_to_proto(req.settings),
        fixed_params=dict(req.fixed_params),
        data=serde.data_to_proto(req.data),
        placement=serde.placement_to_proto(req.placement),
    )
    if o.trials is not None:
        msg.trials = o.trials
    if o.timeout_s is not None:
        msg.timeout_seconds = o.timeout_s
    if o.seed is not None:
        msg.seed = o.seed
    return msg


# --- the job-kind seam --------------------------------------------------------------------------

_KIND_TO_PB = {
    JobKind.TRAIN: ppb.JOB_KIND_TRAIN,
    JobKind.BACKTEST: ppb.JOB_KIND_BACKTEST,
    JobKind.OPTIMIZE: ppb.JOB_KIND_OPTIMIZE,
}


def kind_to_proto(kind: JobKind) -> ppb.JobKind.ValueType:
    return _KIND_TO_PB[kind]


def trainer_job_to_proto(
    job_id: str, request: JobRequest, upload_target: str = "", upload_token: str = ""
) -> tpb.TrainerJob:
    """What the orchestrator sends a trainer: the job's one request field, whatever its kind."""
    msg = tpb.TrainerJob(job_id=job_id, upload_target=upload_target, upload_token=upload_token)
    if isinstance(request, BacktestRequest):
        msg.backtest.CopyFrom(backtest_request_to_proto(request))
    elif isinstance(request, OptimizationRequest):
        msg.optimize.CopyFrom(optimization_request_to_proto(request))
    else:
        msg.request.CopyFrom(serde.request_to_proto(request))
    return msg


def job_request_from_trainer_job(msg: tpb.TrainerJob) -> JobRequest:
    """The request a ``TrainerJob`` carries; exactly one of its request fields is set."""
    given = [name for name in ("request", "backtest", "optimize") if msg.HasField(name)]
    if len(given) > 1:
        raise spec.SpecError(given[1], "a trainer job carries one request, not " + given[0])
    if msg.HasField("backtest"):
        return backtest_request_from_proto(msg.backtest)
    if msg.HasField("optimize"):
        return optimization_request_from_proto(msg.optimize)
    return serde.request_from_proto(msg.request)


def request_to_stored(request: JobRequest) -> tuple[str, bytes]:
    """``(kind, payload)`` as a job store keeps a request (the complete request, defaults
    spelled out, so a restarted orchestrator re-sends exactly what was accepted)."""
    if isinstance(request, BacktestRequest):
        return JobKind.BACKTEST.value, backtest_request_to_proto(request).SerializeToString()
    if isinstance(request, OptimizationRequest):
        payload = optimization_request_to_proto(request).SerializeToString()
        return JobKind.OPTIMIZE.value, payload
    return JobKind.TRAIN.value, serde.request_to_proto(request).SerializeToString()


def request_from_stored(kind: str, payload: bytes) -> JobRequest:
    """The request a store row holds; ``kind`` is ``JobKind``'s value (``train`` for rows
    written before job kinds existed)."""
    job_kind = JobKind(kind or JobKind.TRAIN.value)
    if job_kind is JobKind.BACKTEST:
        return backtest_request_from_proto(spb.BacktestRequest.FromString(payload))
    if job_kind is JobKind.OPTIMIZE:
        return optimization_request_from_proto(spb.OptimizeRequest.FromString(payload))
    return serde.request_from_proto(spb.TrainRequest.FromString(payload))


def kind_of(request: JobRequest) -> JobKind:
    return request.kind
