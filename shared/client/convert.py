"""Protobuf ↔ SDK types and the request builder: the only client code that sees protobuf."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from shared.client.types import Job, ModelInfo, StrategyInfo, StrategyParam
from shared.jobs import JobKind
from shared.rpc import serde
from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import progress_pb2 as ppb
from shared.rpc.v1 import strategy_pb2 as spb
from shared.spec import DataSource, DataSpec


def build_request(
    *,
    symbols: Sequence[str] = (),
    timeframes: Sequence[str] = (),
    epochs: int | None = None,
    seed: int | None = None,
    batch_size: int | None = None,
    bars: int | None = None,
    strategy_yaml: str | None = None,
    strategy_file: str | Path | None = None,
    request_id: str = "",
    require_gpu: bool = False,
    node: str = "",
    data: DataSpec | None = None,
    start: str = "",
    end: str = "",
    market_seed: int | None = None,
    label_threshold: float | str | None = None,
) -> spb.TrainRequest:
    """A ``TrainRequest``: the default strategy, or a KTRDR v3 YAML (text or file) whose
    training section takes ``epochs``/``seed``/``batch_size`` when given.

    ``data`` says where the bars come from (``DataSpec``: a directory on the trainer, an uploaded
    dataset, or the synthetic market asked for explicitly). Without it the request names no
    source: the server trains ``SYNTH`` symbols on the synthetic market and refuses any other
    symbol. ``bars`` is the synthetic market's length, with or without ``data``; ``start``,
    ``end`` and ``market_seed`` set the range and the synthetic market's seed of a request
    without ``data`` (with ``data``, they belong in it). ``label_threshold`` is the zigzag
    labels' move size (a fraction, e.g. ``0.004``) or ``"auto"`` to calibrate it from the
    training rows."""
    request = spb.TrainRequest(
        request_id=request_id, symbols=list(symbols), timeframes=list(timeframes)
    )
    if strategy_file is not None:
        strategy_yaml = Path(strategy_file).read_text()
    threshold = _threshold(label_threshold)
    if strategy_yaml is not None:
        request.strategy_yaml = _with_training(strategy_yaml, epochs, seed, batch_size, threshold)
    else:
        if epochs:
            request.strategy.training.epochs = epochs
        if seed is not None:
            request.strategy.training.seed = seed
        if batch_size:
            request.strategy.training.batch_size = batch_size
        if isinstance(threshold, str):
            request.strategy.labels.auto_threshold = True
        elif threshold is not None:
            request.strategy.labels.threshold = threshold
    fill_data(request.data, data=data, start=start, end=end, market_seed=market_seed, bars=bars)
    fill_placement(request.placement, require_gpu=require_gpu, node=node)
    return request


def fill_data(
    target: spb.DataSpec,
    *,
    data: DataSpec | None,
    start: str = "",
    end: str = "",
    market_seed: int | None = None,
    bars: int | None = None,
) -> None:
    """A request's ``data``: ``data`` as given, or only the range and the synthetic market's
    seed when no source is named (the server decides: ``SYNTH`` symbols only)."""
    if data is not None:
        if start or end or market_seed is not None:
            raise ValueError("give start, end and the market seed inside data=, not beside it")
        target.CopyFrom(data_to_proto(data))
    else:
        if start:
            target.start = start
        if end:
            target.end = end
        if market_seed is not None:
            target.seed = market_seed
    if bars:
        if data is not None and data.source is not DataSource.SYNTHETIC:
            raise ValueError(
                f"bars sets the synthetic market's length; the data here is {data.source.value}"
            )
        target.bars = bars


def fill_placement(target: spb.Placement, *, require_gpu: bool, node: str) -> None:
    if require_gpu:
        target.require_gpu = True
    if node:
        target.node = node


_SOURCES = {
    DataSource.SYNTHETIC: spb.DATA_SOURCE_KIND_SYNTHETIC,
    DataSource.DIRECTORY: spb.DATA_SOURCE_KIND_DIRECTORY,
    DataSource.DATASET: spb.DATA_SOURCE_KIND_DATASET,
}


def data_to_proto(data: DataSpec) -> spb.DataSpec:
    """The request's ``data``: only the fields that belong to its source, so nothing a server
    would ignore is sent (a synthetic seed on directory data, a path on a dataset)."""
    msg = spb.DataSpec(
        source=_SOURCES[data.source], start=data.start, end=data.end, timezone=data.timezone
    )
    if data.source is DataSource.SYNTHETIC:
        if data.timezone:
            raise ValueError("timezone applies to files' naive timestamps, not to synthetic data")
        msg.seed = data.seed
        msg.bars = data.bars
    elif data.source is DataSource.DIRECTORY:
        msg.path = data.path
    else:
        if not data.dataset:
            raise ValueError("a dataset source needs the dataset's name")
        msg.dataset = data.dataset
        msg.dataset_sha256 = data.dataset_sha256
    return msg


def _threshold(value: float | str | None) -> float | str | None:
    """``"auto"``, a fraction in (0, 1), or None; ``ValueError`` saying what fits."""
    if value is None:
        return None
    if isinstance(value, str):
        if value.strip().lower() == "auto":
            return "auto"
        try:
            value = float(value)
        except ValueError:
            raise ValueError(
                f"label threshold {value!r}: give a fraction such as 0.004, or auto"
            ) from None
    if not 0 < value < 1:
        raise ValueError(f"label threshold {value}: a fraction between 0 and 1, e.g. 0.004")
    return float(value)


def _with_training(
    text: str,
    epochs: int | None,
    seed: int | None,
    batch: int | None,
    threshold: float | str | None = None,
) -> str:
    overrides = {k: v for k, v in (("epochs", epochs), ("seed", seed), ("batch_size", batch)) if v}
    if seed == 0:
        overrides["seed"] = 0
    if not overrides and threshold is None:
        return text
    import yaml

    doc = yaml.safe_load(text)
    if not isinstance(doc, dict):
        raise ValueError("not a strategy: the YAML document must be a mapping")
    training = doc.setdefault("training", {})
    if not isinstance(training, dict):
        raise ValueError("training: must be a mapping")
    training.update(overrides)
    if threshold is not None:
        labels = training.setdefault("labels", {})
        if not isinstance(labels, dict):
            raise ValueError("training.labels: must be a mapping")
        labels.pop("zigzag_threshold", None)  # the same setting, spelled the KTRDR way
        labels["threshold"] = threshold
    return str(yaml.safe_dump(doc, sort_keys=False))


def job_from_proto(msg: ppb.Job) -> Job:
    return Job(
        job_id=msg.job_id,
        state=serde.state_from_proto(msg.state),
        node=msg.node,
        request_id=msg.request_id,
        created_at=serde.ts_from_proto(msg.created_at),
        started_at=serde.ts_from_proto(msg.started_at),
        finished_at=serde.ts_from_proto(msg.finished_at),
        percentage=msg.percentage,
        message=msg.message,
        last_seq=msg.last_seq,
        attempt=msg.attempt,
        kind=_KINDS.get(msg.kind, JobKind.TRAIN),
        result=serde.result_from_proto(msg.result) if msg.HasField("result") else None,
        backtest_result=(
            serde.backtest_from_proto(msg.backtest_result)
            if msg.HasField("backtest_result")
            else None
        ),
        optimize_result=(
            serde.optimization_from_proto(msg.optimize_result)
            if msg.HasField("optimize_result")
            else None
        ),
        error=serde.error_from_proto(msg.error) if msg.HasField("error") else None,
        step_index=msg.step_index,
        step_total=msg.step_total,
        step_name=msg.step_name,
        step_percentage=msg.step_percentage,
        eta_seconds=msg.eta_seconds if msg.HasField("eta_seconds") else None,
        updated_at=serde.ts_from_proto(msg.updated_at),
        optimizer=(
            serde.optimizer_from_proto(msg.optimizer) if msg.HasField("optimizer") else None
        ),
        device=msg.device,
    )


_KINDS = {
    ppb.JOB_KIND_TRAIN: JobKind.TRAIN,
    ppb.JOB_KIND_BACKTEST: JobKind.BACKTEST,
    ppb.JOB_KIND_OPTIMIZE: JobKind.OPTIMIZE,
}
_PARAM_TYPES: dict[int, Literal["int", "float", "categorical", "bool"]] = {
    spb.PARAM_TYPE_INT: "int",
    spb.PARAM_TYPE_FLOAT: "float",
    spb.PARAM_TYPE_CATEGORICAL: "categorical",
    spb.PARAM_TYPE_BOOL: "bool",
}


def strategy_from_proto(msg: opb.StrategyInfo) -> StrategyInfo:
    return StrategyInfo(
        name=msg.name,
        description=msg.description,
        params=tuple(
            StrategyParam(
                name=p.name,
                type=_PARAM_TYPES.get(p.type, "categorical"),
                default=p.default,
                low=p.low if p.HasField("low") else None,
                high=p.high if p.HasField("high") else None,
                step=p.step if p.HasField("step") else None,
                choices=tuple(p.choices),
                description=p.description,
            )
            for p in msg.params
        ),
        constraints=tuple(msg.constraints),
    )


def model_from_proto(msg: opb.Model) -> ModelInfo:
    return ModelInfo(
        ref=serde.model_ref_from_proto(msg.ref),
        training_metrics=dict(msg.training_metrics),
        test_metrics=dict(msg.test_metrics),
        feature_names=tuple(msg.feature_names),
        metadata=json.loads(msg.metadata_json) if msg.metadata_json else {},
    )
