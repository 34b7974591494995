"""Protobuf ↔ dataclass translation for the types both services and the client share.

``x_to_proto`` / ``x_from_proto`` pairs; nothing past the servicer edge sees a message type.
``request_from_proto`` is also where proto3's zero values become the documented defaults, so a
grpcurl user can send ``{"symbols":["SYNTH"],"timeframes":["1h"]}`` and get a complete request.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from shared import spec
from shared.datasets import DatasetFile, DatasetInfo
from shared.jobs import (
    EventKind,
    JobError,
    JobEvent,
    JobState,
    ModelAssessment,
    ModelRef,
    TrainResult,
)
from shared.nodes import DeviceKind, NodeDevice, NodeHealth, NodeInfo, NodeStatus
from shared.progress.update import ItemCounter, PreprocessContext
from shared.rpc.serde_results import backtest_from_proto as backtest_from_proto
from shared.rpc.serde_results import backtest_to_proto as backtest_to_proto
from shared.rpc.serde_results import optimization_from_proto as optimization_from_proto
from shared.rpc.serde_results import optimization_to_proto as optimization_to_proto
from shared.rpc.serde_results import optimizer_from_proto as optimizer_from_proto
from shared.rpc.serde_results import optimizer_to_proto as optimizer_to_proto
from shared.rpc.serde_results import provenance_from_proto as provenance_from_proto
from shared.rpc.serde_results import provenance_to_proto as provenance_to_proto
from shared.rpc.serde_results import ts_from_proto as ts_from_proto
from shared.rpc.serde_results import ts_to_proto as ts_to_proto
from shared.rpc.v1 import datasets_pb2 as dpb
from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import progress_pb2 as ppb
from shared.rpc.v1 import strategy_pb2 as spb
from shared.rpc.v1 import trainer_pb2 as tpb
from shared.strategy_yaml import parse_strategy_yaml

# --- timestamps ---------------------------------------------------------------------------------


# --- enums --------------------------------------------------------------------------------------

_STATE_TO_PB = {
    JobState.QUEUED: ppb.JOB_STATE_QUEUED,
    JobState.RUNNING: ppb.JOB_STATE_RUNNING,
    JobState.SUCCEEDED: ppb.JOB_STATE_SUCCEEDED,
    JobState.FAILED: ppb.JOB_STATE_FAILED,
    JobState.CANCELLED: ppb.JOB_STATE_CANCELLED,
}
_STATE_FROM_PB = {v: k for k, v in _STATE_TO_PB.items()}

_KIND_TO_PB = {
    EventKind.LIFECYCLE: ppb.EVENT_KIND_LIFECYCLE,
    EventKind.STEP: ppb.EVENT_KIND_STEP,
    EventKind.DETAIL: ppb.EVENT_KIND_DETAIL,
    EventKind.EPOCH: ppb.EVENT_KIND_EPOCH,
    EventKind.BATCH: ppb.EVENT_KIND_BATCH,
    EventKind.UPLOAD: ppb.EVENT_KIND_UPLOAD,
    EventKind.WARNING: ppb.EVENT_KIND_WARNING,
    EventKind.TRIAL: ppb.EVENT_KIND_TRIAL,
}
_KIND_FROM_PB = {v: k for k, v in _KIND_TO_PB.items()}


def state_to_proto(state: JobState) -> ppb.JobState.ValueType:
    return _STATE_TO_PB[state]


def state_from_proto(value: ppb.JobState.ValueType) -> JobState:
    try:
        return _STATE_FROM_PB[value]
    except KeyError:
        raise ValueError(f"unknown job state {value}") from None


# --- the training request -----------------------------------------------------------------------


def request_from_proto(msg: spb.TrainRequest) -> spec.TrainingRequest:
    """Translate and fill defaults. Raises ``SpecError`` for values no default can mend.

    With ``strategy_yaml``, the request's own fields win and the file fills what the request
    leaves empty; the file's timeframes are defaults the request's replace position by position
    (``ParsedStrategy.for_timeframes``). The data source is decided once the symbols are known
    (``data_from_proto``)."""
    symbols, timeframes = tuple(msg.symbols), tuple(msg.timeframes)
    start, end = msg.data.start, msg.data.end
    if msg.strategy_yaml:
        if msg.HasField("strategy"):
            raise spec.SpecError("strategy_yaml", "give either strategy or strategy_yaml, not both")
        parsed = parse_strategy_yaml(msg.strategy_yaml)
        symbols = symbols or parsed.symbols
        timeframes = timeframes or parsed.timeframes
        strategy = parsed.for_timeframes(timeframes)
        start, end = start or parsed.start, end or parsed.end
    else:
        strategy = strategy_from_proto(msg.strategy)
    data = dataclasses.replace(data_from_proto(msg.data, symbols=symbols), start=start, end=end)
    return spec.TrainingRequest(
        request_id=msg.request_id,
        symbols=symbols,
        timeframes=timeframes,
        strategy=strategy,
        data=data,
        placement=placement_from_proto(msg.placement),
    )


def strategy_from_proto(msg: spb.StrategySpec) -> spec.StrategySpec:
    default = spec.default_strategy()
    if msg.indicators or msg.fuzzy_sets:
        indicators = tuple(
            spec.IndicatorSpec(id=i.id, type=i.type.lower(), params=dict(i.params))
            for i in msg.indicators
        )
        fuzzy_sets = tuple(
            spec.FuzzySetSpec(
                input=f.input,
                name=f.name,
                shape=f.shape.lower(),
                params=tuple(f.params),
                set_id=f.set_id,
            )
            for f in msg.fuzzy_sets
        )
    else:
        indicators, fuzzy_sets = default.indicators, default.fuzzy_sets
    nn_inputs = tuple(
        spec.NNInputSpec(fuzzy_set=n.fuzzy_set, timeframes=tuple(n.timeframes))
        for n in msg.nn_inputs
    )
    return spec.StrategySpec(
        name=msg.name or default.name,
        indicators=indicators,
        fuzzy_sets=fuzzy_sets,
        nn_inputs=nn_inputs,
        labels=_labels_from_proto(msg.labels),
        model=_model_from_proto(msg.model),
        training=_training_from_proto(msg.training),
    )


def _labels_from_proto(msg: spb.LabelSpec) -> spec.LabelSpec:
    d = spec.LabelSpec()
    method = {
        spb.LABEL_METHOD_UNSPECIFIED: d.method,
        spb.LABEL_METHOD_ZIGZAG: spec.LabelMethod.ZIGZAG,
        spb.LABEL_METHOD_FORWARD_RETURN: spec.LabelMethod.FORWARD_RETURN,
    }.get(msg.method)
    if method is None:
        raise spec.SpecError("strategy.labels.method", f"unknown label method {msg.method}")
    return spec.LabelSpec(
        method=method,
        threshold=msg.threshold or d.threshold,
        lookahead=msg.lookahead or d.lookahead,
        auto_threshold=msg.auto_threshold,
    )


def _model_from_proto(msg: spb.ModelSpec) -> spec.ModelSpec:
    d = spec.ModelSpec()
    return spec.ModelSpec(
        hidden_layers=tuple(msg.hidden_layers) or d.hidden_layers,
        activation=msg.activation.lower() or d.activation,
        dropout=msg.dropout if msg.HasField("dropout") else d.dropout,
    )


def _patience_from_proto(msg: spb.TrainingSpec, default: int) -> int:
    """Early stopping is on by default: an absent patience takes ``default``; an explicit 0
    turns it off."""
    return msg.early_stopping_patience if msg.HasField("early_stopping_patience") else default


def _training_from_proto(msg: spb.TrainingSpec) -> spec.TrainingSpec:
    d = spec.TrainingSpec()
    return spec.TrainingSpec(
        epochs=msg.epochs or d.epochs,
        batch_size=msg.batch_size or d.batch_size,
        learning_rate=msg.learning_rate or d.learning_rate,
        early_stopping_patience=_patience_from_proto(msg, d.early_stopping_patience),
        validation_split=msg.validation_split or d.validation_split,
        test_split=msg.test_split or d.test_split,
        seed=msg.seed if msg.HasField("seed") else d.seed,
    )


def data_from_proto(msg: spb.DataSpec, *, symbols: Sequence[str] = ()) -> spec.DataSpec:
    """The data spec with defaults; an unspecified source is decided here.

    No source given: ``data.path`` alone means a directory, ``data.dataset`` alone a dataset,
    and neither the synthetic market only when every symbol is synthetic
    (``spec.is_synthetic_symbol``). Otherwise the source stays ``UNSPECIFIED``, which
    ``spec.validate`` refuses with what to add: a real symbol never silently gets generated
    bars."""
    d = spec.DataSpec()
    source = {
        spb.DATA_SOURCE_KIND_UNSPECIFIED: _unspecified_source(msg, symbols),
        spb.DATA_SOURCE_KIND_SYNTHETIC: spec.DataSource.SYNTHETIC,
        spb.DATA_SOURCE_KIND_DIRECTORY: spec.DataSource.DIRECTORY,
        spb.DATA_SOURCE_KIND_DATASET: spec.DataSource.DATASET,
    }.get(msg.source)
    if source is None:
        raise spec.SpecError("data.source", f"unknown data source {msg.source}")
    return spec.DataSpec(
        source=source,
        seed=msg.seed if msg.HasField("seed") else d.seed,
        bars=msg.bars or d.bars,
        path=msg.path,
        start=msg.start,
        end=msg.end,
        dataset=msg.dataset,
        dataset_sha256=msg.dataset_sha256,
        timezone=msg.timezone,
    )


def _unspecified_source(msg: spb.DataSpec, symbols: Sequence[str]) -> spec.DataSource:
    if msg.path and not msg.dataset:
        return spec.DataSource.DIRECTORY
    if msg.dataset and not msg.path:
        return spec.DataSource.DATASET
    if symbols and not msg.path and all(spec.is_synthetic_symbol(s) for s in symbols):
        return spec.DataSource.SYNTHETIC
    return spec.DataSource.UNSPECIFIED


_SOURCE_TO_PB = {
    spec.DataSource.UNSPECIFIED: spb.DATA_SOURCE_KIND_UNSPECIFIED,
    spec.DataSource.SYNTHETIC: spb.DATA_SOURCE_KIND_SYNTHETIC,
    spec.DataSource.DIRECTORY: spb.DATA_SOURCE_KIND_DIRECTORY,
    spec.DataSource.DATASET: spb.DATA_SOURCE_KIND_DATASET,
}


def placement_from_proto(msg: spb.Placement) -> spec.PlacementSpec:
    mode = {
        spb.PLACEMENT_MODE_UNSPECIFIED: spec.PlacementMode.AUTO,
        spb.PLACEMENT_MODE_AUTO: spec.PlacementMode.AUTO,
        spb.PLACEMENT_MODE_CPU: spec.PlacementMode.CPU,
        spb.PLACEMENT_MODE_GPU: spec.PlacementMode.GPU,
    }.get(msg.mode)
    if mode is None:
        raise spec.SpecError("placement.mode", f"unknown placement mode {msg.mode}")
    return spec.PlacementSpec(
        mode=mode,
        require_gpu=msg.require_gpu,
        node=msg.node,
        allow_fallback=msg.allow_fallback if msg.HasField("allow_fallback") else True,
        device=msg.device,
    )


def request_to_proto(req: spec.TrainingRequest) -> spb.TrainRequest:
    """The complete request, every default spelled out: what the trainer receives."""
    s = req.strategy
    return spb.TrainRequest(
        request_id=req.request_id,
        symbols=list(req.symbols),
        timeframes=list(req.timeframes),
        strategy=spb.StrategySpec(
            name=s.name,
            indicators=[
                spb.IndicatorSpec(id=i.id, type=i.type, params=dict(i.params)) for i in s.indicators
            ],
            fuzzy_sets=[
                spb.FuzzySetSpec(
                    input=f.input,
                    name=f.name,
                    shape=f.shape,
                    params=list(f.params),
                    set_id=f.set_id,
                )
                for f in s.fuzzy_sets
            ],
            nn_inputs=[
                spb.NNInput(fuzzy_set=n.fuzzy_set, timeframes=list(n.timeframes))
                for n in s.nn_inputs
            ],
            labels=spb.LabelSpec(
                method=(
                    spb.LABEL_METHOD_ZIGZAG
                    if s.labels.method is spec.LabelMethod.ZIGZAG
                    else spb.LABEL_METHOD_FORWARD_RETURN
                ),
                threshold=s.labels.threshold,
                lookahead=s.labels.lookahead,
                auto_threshold=s.labels.auto_threshold,
            ),
            model=spb.ModelSpec(
                hidden_layers=list(s.model.hidden_layers),
                activation=s.model.activation,
                dropout=s.model.dropout,
            ),
            training=spb.TrainingSpec(
                epochs=s.training.epochs,
                batch_size=s.training.batch_size,
                learning_rate=s.training.learning_rate,
                early_stopping_patience=s.training.early_stopping_patience,
                validation_split=s.training.validation_split,
                test_split=s.training.test_split,
                seed=s.training.seed,
            ),
        ),
        data=data_to_proto(req.data),
        placement=placement_to_proto(req.placement),
    )


def data_to_proto(d: spec.DataSpec) -> spb.DataSpec:
    return spb.DataSpec(
        source=_SOURCE_TO_PB[d.source],
        seed=d.seed,
        bars=d.bars,
        path=d.path,
        start=d.start,
        end=d.end,
        dataset=d.dataset,
        dataset_sha256=d.dataset_sha256,
        timezone=d.timezone,
    )


def placement_to_proto(p: spec.PlacementSpec) -> spb.Placement:
    return spb.Placement(
        mode={
            spec.PlacementMode.AUTO: spb.PLACEMENT_MODE_AUTO,
            spec.PlacementMode.CPU: spb.PLACEMENT_MODE_CPU,
            spec.PlacementMode.GPU: spb.PLACEMENT_MODE_GPU,
        }[p.mode],
        require_gpu=p.require_gpu,
        node=p.node,
        allow_fallback=p.allow_fallback,
        device=p.device,
    )


# --- results and events -------------------------------------------------------------------------


def model_ref_to_proto(ref: ModelRef) -> ppb.ModelRef:
    return ppb.ModelRef(
        name=ref.name,
        strategy=ref.strategy,
        version=ref.version,
        sha256=ref.sha256,
        size_bytes=ref.size_bytes,
        symbols=list(ref.symbols),
        timeframes=list(ref.timeframes),
        created_at=ts_to_proto(ref.created_at),
        job_id=ref.job_id,
        data=provenance_to_proto(ref.data) if ref.data else None,
        assessment=assessment_to_proto(ref.assessment) if ref.assessment else None,
        trading=dict(ref.trading),
    )


def model_ref_from_proto(msg: ppb.ModelRef) -> ModelRef:
    return ModelRef(
        name=msg.name,
        strategy=msg.strategy,
        version=msg.version,
        sha256=msg.sha256,
        size_bytes=msg.size_bytes,
        symbols=tuple(msg.symbols),
        timeframes=tuple(msg.timeframes),
        created_at=ts_from_proto(msg.created_at),
        job_id=msg.job_id,
        data=provenance_from_proto(msg.data) if msg.HasField("data") else None,
        assessment=assessment_from_proto(msg.assessment) if msg.HasField("assessment") else None,
        trading=dict(msg.trading),
    )


def assessment_to_proto(a: ModelAssessment) -> ppb.ModelAssessment:
    return ppb.ModelAssessment(
        accuracy=a.accuracy,
        macro_f1=a.macro_f1,
        class_support=dict(a.class_support),
        baseline_class=a.baseline_class,
        baseline_accuracy=a.baseline_accuracy,
        lift_points=a.lift_points,
        beats_baseline=a.beats_baseline,
        verdict=a.verdict,
    )


def assessment_from_proto(msg: ppb.ModelAssessment) -> ModelAssessment:
    return ModelAssessment(
        accuracy=msg.accuracy,
        macro_f1=msg.macro_f1,
        class_support=dict(msg.class_support),
        baseline_class=msg.baseline_class,
        baseline_accuracy=msg.baseline_accuracy,
        lift_points=msg.lift_points,
        beats_baseline=msg.beats_baseline,
        verdict=msg.verdict,
    )


def result_to_proto(result: TrainResult) -> ppb.TrainResult:
    msg = ppb.TrainResult(
        training_metrics=dict(result.training_metrics),
        test_metrics=dict(result.test_metrics),
        feature_importance=dict(result.feature_importance),
        device=result.device,
    )
    if result.model is not None:
        msg.model.CopyFrom(model_ref_to_proto(result.model))
    if result.data is not None:
        msg.data.CopyFrom(provenance_to_proto(result.data))
    if result.assessment is not None:
        msg.assessment.CopyFrom(assessment_to_proto(result.assessment))
    if result.backtest is not None:
        msg.backtest.CopyFrom(backtest_to_proto(result.backtest))
    return msg


def result_from_proto(msg: ppb.TrainResult) -> TrainResult:
    return TrainResult(
        model=model_ref_from_proto(msg.model) if msg.HasField("model") else None,
        training_metrics=dict(msg.training_metrics),
        test_metrics=dict(msg.test_metrics),
        feature_importance=dict(msg.feature_importance),
        device=msg.device,
        data=provenance_from_proto(msg.data) if msg.HasField("data") else None,
        assessment=assessment_from_proto(msg.assessment) if msg.HasField("assessment") else None,
        backtest=backtest_from_proto(msg.backtest) if msg.HasField("backtest") else None,
    )


def dataset_to_proto(info: DatasetInfo) -> dpb.Dataset:
    return dpb.Dataset(
        name=info.name,
        sha256=info.sha256,
        created_at=ts_to_proto(info.created_at),
        size_bytes=info.size_bytes,
        files=[
            dpb.DatasetFile(
                filename=f.filename,
                symbol=f.symbol,
                timeframe=f.timeframe,
                sha256=f.sha256,
                size_bytes=f.size_bytes,
                rows=f.rows,
                start=ts_to_proto(f.start),
                end=ts_to_proto(f.end),
            )
            for f in info.files
        ],
    )


def dataset_from_proto(msg: dpb.Dataset) -> DatasetInfo:
    return DatasetInfo(
        name=msg.name,
        sha256=msg.sha256,
        created_at=ts_from_proto(msg.created_at),
        files=tuple(
            DatasetFile(
                filename=f.filename,
                symbol=f.symbol,
                timeframe=f.timeframe,
                sha256=f.sha256,
                size_bytes=f.size_bytes,
                rows=f.rows,
                start=ts_from_proto(f.start),
                end=ts_from_proto(f.end),
            )
            for f in msg.files
        ),
    )


def error_to_proto(error: JobError) -> ppb.JobError:
    return ppb.JobError(code=error.code, message=error.message, where=error.where)


def error_from_proto(msg: ppb.JobError) -> JobError:
    return JobError(code=msg.code, message=msg.message, where=msg.where)


def event_to_proto(ev: JobEvent) -> ppb.ProgressEvent:
    msg = ppb.ProgressEvent(
        job_id=ev.job_id,
        seq=ev.seq,
        time=ts_to_proto(ev.time),
        state=_STATE_TO_PB[ev.state],
        kind=_KIND_TO_PB[ev.kind],
        percentage=ev.percentage,
        message=ev.message,
        step_index=ev.step_index,
        step_total=ev.step_total,
        step_name=ev.step_name,
        step_percentage=ev.step_percentage,
        epoch=ev.epoch,
        total_epochs=ev.total_epochs,
        batch=ev.batch,
        total_batches=ev.total_batches,
        metrics=dict(ev.metrics),
        node=ev.node,
        device=ev.device,
        stage=ev.stage,
    )
    if ev.items is not None:
        msg.items.CopyFrom(
            ppb.ItemCounter(name=ev.items.name, current=ev.items.current, total=ev.items.total)
        )
    if ev.context is not None:
        c = ev.context
        msg.context.CopyFrom(
            ppb.PreprocessContext(
                symbol=c.symbol,
                symbol_index=c.symbol_index,
                symbol_total=c.symbol_total,
                timeframe=c.timeframe,
                timeframe_index=c.timeframe_index,
                timeframe_total=c.timeframe_total,
                detail=c.detail,
                detail_index=c.detail_index,
                detail_total=c.detail_total,
            )
        )
    if ev.eta_seconds is not None:
        msg.eta_seconds = ev.eta_seconds
    if ev.result is not None:
        msg.result.CopyFrom(result_to_proto(ev.result))
    if ev.error is not None:
        msg.error.CopyFrom(error_to_proto(ev.error))
    if ev.optimizer is not None:
        msg.optimizer.CopyFrom(optimizer_to_proto(ev.optimizer))
    if ev.backtest_result is not None:
        msg.backtest_result.CopyFrom(backtest_to_proto(ev.backtest_result))
    if ev.optimize_result is not None:
        msg.optimize_result.CopyFrom(optimization_to_proto(ev.optimize_result))
    return msg


def event_to_bytes(ev: JobEvent) -> bytes:
    """The event as stored: its ``ProgressEvent`` bytes."""
    return event_to_proto(ev).SerializeToString()


def event_from_bytes(payload: bytes) -> JobEvent:
    return event_from_proto(ppb.ProgressEvent.FromString(payload))


def event_from_proto(msg: ppb.ProgressEvent) -> JobEvent:
    c = msg.context
    return JobEvent(
        job_id=msg.job_id,
        seq=msg.seq,
        time=ts_from_proto(msg.time),
        state=state_from_proto(msg.state),
        kind=_KIND_FROM_PB.get(msg.kind, EventKind.LIFECYCLE),
        percentage=msg.percentage,
        message=msg.message,
        step_index=msg.step_index,
        step_total=msg.step_total,
        step_name=msg.step_name,
        step_percentage=msg.step_percentage,
        epoch=msg.epoch,
        total_epochs=msg.total_epochs,
        batch=msg.batch,
        total_batches=msg.total_batches,
        items=(
            ItemCounter(name=msg.items.name, current=msg.items.current, total=msg.items.total)
            if msg.HasField("items")
            else None
        ),
        context=(
            PreprocessContext(
                symbol=c.symbol,
                symbol_index=c.symbol_index,
                symbol_total=c.symbol_total,
                timeframe=c.timeframe,
                timeframe_index=c.timeframe_index,
                timeframe_total=c.timeframe_total,
                detail=c.detail,
                detail_index=c.detail_index,
                detail_total=c.detail_total,
            )
            if msg.HasField("context")
            else None
        ),
        metrics=dict(msg.metrics),
        eta_seconds=msg.eta_seconds if msg.HasField("eta_seconds") else None,
        node=msg.node,
        device=msg.device,
        result=result_from_proto(msg.result) if msg.HasField("result") else None,
        error=error_from_proto(msg.error) if msg.HasField("error") else None,
        optimizer=optimizer_from_proto(msg.optimizer) if msg.HasField("optimizer") else None,
        stage=msg.stage,
        backtest_result=(
            backtest_from_proto(msg.backtest_result) if msg.HasField("backtest_result") else None
        ),
        optimize_result=(
            optimization_from_proto(msg.optimize_result)
            if msg.HasField("optimize_result")
            else None
        ),
    )


# --- nodes --------------------------------------------------------------------------------------

_DEVICE_TO_PB = {
    DeviceKind.CPU: tpb.DEVICE_KIND_CPU,
    DeviceKind.CUDA: tpb.DEVICE_KIND_CUDA,
    DeviceKind.MPS: tpb.DEVICE_KIND_MPS,
}
_DEVICE_FROM_PB = {v: k for k, v in _DEVICE_TO_PB.items()}
_HEALTH_TO_PB = {
    NodeHealth.UNKNOWN: opb.NODE_HEALTH_UNSPECIFIED,
    NodeHealth.SERVING: opb.NODE_HEALTH_SERVING,
    NodeHealth.NOT_SERVING: opb.NODE_HEALTH_NOT_SERVING,
    NodeHealth.UNREACHABLE: opb.NODE_HEALTH_UNREACHABLE,
}
_HEALTH_FROM_PB = {v: k for k, v in _HEALTH_TO_PB.items()}


def node_device_to_proto(device: NodeDevice) -> tpb.DeviceInfo:
    return tpb.DeviceInfo(
        kind=_DEVICE_TO_PB[device.kind],
        name=device.name,
        torch_device=device.torch_device,
        memory_bytes=device.memory_bytes,
        supports_mixed_precision=device.supports_mixed_precision,
    )


def node_device_from_proto(msg: tpb.DeviceInfo) -> NodeDevice:
    return NodeDevice(
        kind=_DEVICE_FROM_PB.get(msg.kind, DeviceKind.CPU),
        name=msg.name,
        torch_device=msg.torch_device or "cpu",
        memory_bytes=msg.memory_bytes,
        supports_mixed_precision=msg.supports_mixed_precision,
    )


def node_info_to_proto(info: NodeInfo) -> tpb.NodeInfo:
    return tpb.NodeInfo(
        node_id=info.node_id,
        address=info.address,
        device=node_device_to_proto(info.device),
        slots=info.slots,
        slots_used=info.slots_used,
        running_jobs=list(info.running_jobs),
        versions=dict(info.versions),
        draining=info.draining,
    )


def node_info_from_proto(msg: tpb.NodeInfo) -> NodeInfo:
    return NodeInfo(
        node_id=msg.node_id,
        address=msg.address,
        device=node_device_from_proto(msg.device),
        slots=msg.slots,
        slots_used=msg.slots_used,
        running_jobs=tuple(msg.running_jobs),
        versions=dict(msg.versions),
        draining=msg.draining,
    )


def node_status_to_proto(status: NodeStatus) -> opb.Node:
    info = status.info
    msg = opb.Node(
        address=status.address,
        health=_HEALTH_TO_PB[status.health],
        slots=info.slots if info else 0,
        slots_used=status.slots_used,
        last_check=ts_to_proto(status.last_check),
        latency_ms=status.latency_ms,
        source=status.source,
        node_id=info.node_id if info else "",
        detail=status.detail,
    )
    if info is not None:
        msg.device.CopyFrom(node_device_to_proto(info.device))
    return msg


def node_status_from_proto(msg: opb.Node) -> NodeStatus:
    return NodeStatus(
        address=msg.address,
        source=msg.source,
        health=_HEALTH_FROM_PB.get(msg.health, NodeHealth.UNKNOWN),
        info=(
            NodeInfo(
                node_id=msg.node_id,
                address=msg.address,
                device=node_device_from_proto(msg.device),
                slots=msg.slots,
                slots_used=msg.slots_used,
            )
            if msg.HasField("device")
            else None
        ),
        slots_used=msg.slots_used,
        last_check=ts_from_proto(msg.last_check),
        latency_ms=msg.latency_ms,
        detail=msg.detail,
    )
