"""The trainwire metadata of a model artifact, read one way by everyone: the upload receiver
before it stores a model, ``GetModel`` and the catalogue when they show one, ``load_model``
when it rebuilds one. No torch here, so the orchestrator reads it without loading torch.

The metadata is a JSON object in the safetensors header under ``"trainwire"``. ``format_version``
is required (1..``FORMAT_VERSION``); every other key is optional, but a key that is present must
have the type its readers rely on (``check_metadata``): ``feature_names``, ``classes``,
``symbols`` and ``timeframes`` lists of strings; ``train_metrics``, ``test_metrics`` and
``feature_importance`` objects of numbers (``null`` where a metric is undefined); ``model``,
``scaler``, ``strategy``, ``data``, ``device``, ``versions``, ``provenance``, ``assessment``,
``reproduce`` and ``labels`` objects; ``strategy_name`` and
``base_timeframe`` strings.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.jobs import DataProvenance, ModelAssessment, SeriesProvenance

FORMAT_VERSION = 1
METADATA_KEY = "trainwire"
MAX_HEADER_BYTES = 64 * 1024 * 1024
"""A header bigger than this is refused before it is read (untrusted uploads)."""


class ArtifactError(ValueError):
    """A file that is not a readable trainwire artifact."""


@dataclass(frozen=True)
class ModelSummary:
    """What ``GetModel`` shows of a model, taken from its metadata."""

    feature_names: tuple[str, ...]
    classes: tuple[str, ...]
    training_metrics: dict[str, float]
    test_metrics: dict[str, float]
    feature_importance: dict[str, float]
    provenance: DataProvenance | None = None
    """Where its bars came from (``provenance``), when the artifact records it."""
    assessment: ModelAssessment | None = None
    """Its test-split quality beside the majority-class baseline (``assessment``)."""


_STRING_LISTS = ("feature_names", "classes", "symbols", "timeframes")
_NUMBER_MAPS = ("train_metrics", "test_metrics", "feature_importance")
_OBJECTS = (
    "model",
    "scaler",
    "strategy",
    "data",
    "device",
    "versions",
    "provenance",
    "assessment",
    "reproduce",
    "labels",
)
_STRINGS = ("strategy_name", "base_timeframe")


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_metadata(metadata: Mapping[str, Any]) -> ModelSummary:
    """Check ``metadata`` against the types its readers rely on and return what ``GetModel``
    shows; raise ``ArtifactError`` naming the first key that is wrong and how."""
    version = metadata.get("format_version")
    if (
        not isinstance(version, int)
        or isinstance(version, bool)
        or not 1 <= version <= FORMAT_VERSION
    ):
        raise ArtifactError(
            f"artifact format {version!r} is not supported "
            f"(this trainwire reads 1..{FORMAT_VERSION})"
        )
    for key in _STRING_LISTS:
        value = metadata.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ArtifactError(f"{key} must be a list of strings, not {_shown(value)}")
    for key in _NUMBER_MAPS:
        value = metadata.get(key, {})
        if not isinstance(value, dict) or not all(
            v is None or _is_number(v) for v in value.values()
        ):
            raise ArtifactError(
                f"{key} must be an object of numbers (null where undefined), not {_shown(value)}"
            )
    for key in _OBJECTS:
        if key in metadata and not isinstance(metadata[key], dict):
            raise ArtifactError(f"{key} must be an object, not {_shown(metadata[key])}")
    for key in _STRINGS:
        if key in metadata and not isinstance(metadata[key], str):
            raise ArtifactError(f"{key} must be a string, not {_shown(metadata[key])}")
    return ModelSummary(
        feature_names=tuple(metadata.get("feature_names", [])),
        classes=tuple(metadata.get("classes", [])),
        training_metrics=_numbers(metadata.get("train_metrics", {})),
        test_metrics=_numbers(metadata.get("test_metrics", {})),
        feature_importance=_numbers(metadata.get("feature_importance", {})),
        provenance=provenance_from_json(metadata["provenance"])
        if "provenance" in metadata
        else None,
        assessment=assessment_from_json(metadata["assessment"])
        if "assessment" in metadata
        else None,
    )


def _field(document: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = document.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ArtifactError(f"{where}.{key} must be {_kind_name(kind)}, not {_shown(value)}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def provenance_from_json(value: Any) -> DataProvenance:
    """The ``provenance`` object of an artifact's metadata (``to_jsonable`` of a
    ``DataProvenance``); ``ArtifactError`` naming the key when it has the wrong shape."""
    if not isinstance(value, dict):
        raise ArtifactError(f"provenance must be an object, not {_shown(value)}")
    series = _field(value, "series", list, "provenance")
    parsed = []
    for i, item in enumerate(series):
        where = f"provenance.series[{i}]"
        if not isinstance(item, dict):
            raise ArtifactError(f"{where} must be an object, not {_shown(item)}")
        parsed.append(
            SeriesProvenance(
                symbol=_field(item, "symbol", str, where),
                timeframe=_field(item, "timeframe", str, where),
                file=_field(item, "file", str, where),
                start=float(_field(item, "start", (int, float), where)),
                end=float(_field(item, "end", (int, float), where)),
                rows=int(_field(item, "rows", int, where)),
                resampled_from=_field(item, "resampled_from", str, where),
            )
        )
    return DataProvenance(
        source=_field(value, "source", str, "provenance"),
        location=_field(value, "location", str, "provenance"),
        timezone=_field(value, "timezone", str, "provenance"),
        series=tuple(parsed),
    )


def assessment_from_json(value: Any) -> ModelAssessment:
    """The ``assessment`` object of an artifact's metadata (``to_jsonable`` of a
    ``ModelAssessment``; undefined numbers are null)."""
    if not isinstance(value, dict):
        raise ArtifactError(f"assessment must be an object, not {_shown(value)}")
    support = _field(value, "class_support", dict, "assessment")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in support.values()):
        raise ArtifactError(
            f"assessment.class_support must map classes to counts, not {_shown(support)}"
        )

    def number(key: str) -> float:
        raw = value.get(key)
        if raw is None:
            return math.nan
        return float(_field(value, key, (int, float), "assessment"))

    return ModelAssessment(
        accuracy=number("accuracy"),
        macro_f1=number("macro_f1"),
        class_support={str(k): int(v) for k, v in support.items()},
        baseline_class=_field(value, "baseline_class", str, "assessment"),
        baseline_accuracy=number("baseline_accuracy"),
        lift_points=number("lift_points"),
        beats_baseline=_field(value, "beats_baseline", bool, "assessment"),
        verdict=_field(value, "verdict", str, "assessment"),
    )


def _numbers(value: dict[str, Any]) -> dict[str, float]:
    """The defined, finite metrics (JSON has no NaN: undefined ones are stored as null)."""
    return {str(k): float(v) for k, v in value.items() if _is_number(v) and math.isfinite(float(v))}


def _shown(value: Any) -> str:
    text = json.dumps(value, default=str)
    text = text if len(text) <= 60 else f"{text[:57]}..."
    return f"{_type_name(value)} {text}"


def _header(source: Path | str | bytes) -> dict[str, Any]:
    if isinstance(source, bytes | bytearray | memoryview):
        blob = bytes(source)
        if len(blob) < 8:
            raise ArtifactError("not a safetensors file: shorter than its header length")
        (length,) = struct.unpack("<Q", blob[:8])
        if length > MAX_HEADER_BYTES or 8 + length > len(blob):
            raise ArtifactError(f"not a safetensors file: bad header length {length}")
        raw = blob[8 : 8 + length]
    else:
        with open(source, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise ArtifactError("not a safetensors file: shorter than its header length")
            (length,) = struct.unpack("<Q", prefix)
            if length > MAX_HEADER_BYTES:
                raise ArtifactError(f"not a safetensors file: bad header length {length}")
            raw = handle.read(length)
            if len(raw) != length:
                raise ArtifactError("not a safetensors file: truncated header")
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"not a safetensors file: unreadable header ({exc})") from exc
    if not isinstance(header, dict):
        raise ArtifactError("not a safetensors file: the header is not an object")
    return header


def _no_constant(name: str) -> Any:
    raise ArtifactError(f"{METADATA_KEY!r} metadata holds {name}, which JSON has not got")


def read_artifact_metadata(source: Path | str | bytes) -> dict[str, Any]:
    """The trainwire metadata of an artifact, read from the header only (no tensors loaded),
    and checked by ``check_metadata``; raises ``ArtifactError`` saying what is wrong."""
    extra = _header(source).get("__metadata__") or {}
    text = extra.get(METADATA_KEY) if isinstance(extra, dict) else None
    if not isinstance(text, str):
        raise ArtifactError(f"no {METADATA_KEY!r} metadata: not a trainwire artifact")
    try:
        metadata = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"unreadable {METADATA_KEY!r} metadata: {exc}") from exc
    if not isinstance(metadata, dict):
        raise ArtifactError(f"{METADATA_KEY!r} metadata is not an object")
    check_metadata(metadata)
    return metadata
