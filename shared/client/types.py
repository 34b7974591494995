"""What the client SDK returns: plain dataclasses, no protobuf."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from shared.jobs import JobError, JobState, ModelRef, TrainResult
from shared.spec import DataSpec


class TrainOptions(TypedDict, total=False):
    """The keyword options of ``train`` and ``submit`` (all optional); ``convert.build_request``
    says what each does. A misspelt keyword is a type error, not a silently ignored option."""

    data: DataSpec | None
    epochs: int | None
    seed: int | None
    batch_size: int | None
    bars: int | None
    strategy_yaml: str | None
    strategy_file: str | Path | None
    request_id: str
    require_gpu: bool
    node: str
    start: str
    end: str
    market_seed: int | None
    label_threshold: float | str | None


@dataclass(frozen=True, kw_only=True)
class Job:
    job_id: str
    state: JobState
    node: str = ""
    request_id: str = ""
    created_at: float = 0.0
    started_at: float = 0.0
    finished_at: float = 0.0
    percentage: float = 0.0
    message: str = ""
    last_seq: int = 0
    """The seq of the job's latest event: ``watch(job_id, after_seq=last_seq)`` follows on."""
    attempt: int = 0
    result: TrainResult | None = None
    error: JobError | None = None


@dataclass(frozen=True, kw_only=True)
class ModelInfo:
    ref: ModelRef
    training_metrics: dict[str, float] = field(default_factory=dict)
    test_metrics: dict[str, float] = field(default_factory=dict)
    feature_names: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
