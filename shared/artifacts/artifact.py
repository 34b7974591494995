"""The model artifact: one safetensors file, weights plus trainwire metadata. Never pickle.

The weights are the model's state dict (contiguous CPU tensors). Everything else a user needs to
run the model (feature names, scaler, classes, architecture, metrics, versions, data range) is a
JSON document stored in the safetensors header metadata under the key ``"trainwire"`` — so a
single file travels, and any safetensors reader can open it::

    from safetensors import safe_open
    with safe_open("model.safetensors", "pt") as f:
        meta = json.loads(f.metadata()["trainwire"])

``load_model(path).predict(features)`` rebuilds the MLP, applies the scaler and returns class
indices into ``metadata["classes"]``. The metadata is read and checked by
``shared.artifacts.metadata`` (torch-free, shared with the orchestrator).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import safetensors.torch
import torch
from torch import nn

from shared.artifacts.metadata import (
    FORMAT_VERSION,
    MAX_HEADER_BYTES,
    METADATA_KEY,
    ArtifactError,
    check_metadata,
    read_artifact_metadata,
)
from shared.pipeline.model import model_from_architecture

__all__ = [
    "ARTIFACT_NAME",
    "FORMAT_VERSION",
    "MAX_HEADER_BYTES",
    "METADATA_KEY",
    "ArtifactError",
    "ArtifactInfo",
    "LoadedModel",
    "check_metadata",
    "encode_artifact",
    "load_artifact",
    "load_model",
    "read_artifact_metadata",
    "to_jsonable",
    "write_artifact",
]

ARTIFACT_NAME = "model.safetensors"


@dataclass(frozen=True)
class ArtifactInfo:
    path: Path
    sha256: str
    size_bytes: int


def to_jsonable(value: Any) -> Any:
    """Plain JSON types from dataclasses, enums, mappings, numpy and pandas values.

    Non-finite floats become ``None`` (JSON has no NaN).
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, str | type(None)):
        return value
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    raise TypeError(f"cannot store {type(value).__name__} in artifact metadata")


def encode_artifact(state_dict: Mapping[str, torch.Tensor], metadata: Mapping[str, Any]) -> bytes:
    """The artifact's bytes: safetensors with the metadata JSON under ``"trainwire"``."""
    meta = {"format_version": FORMAT_VERSION, **to_jsonable(metadata)}
    text = json.dumps(meta, sort_keys=True, separators=(",", ":"), allow_nan=False)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    data: bytes = safetensors.torch.save(tensors, metadata={METADATA_KEY: text})
    return data


def write_artifact(
    path: Path, state_dict: Mapping[str, torch.Tensor], metadata: Mapping[str, Any]
) -> ArtifactInfo:
    """Write the artifact atomically: temp file in the same folder, fsync, ``os.replace``."""
    data = encode_artifact(state_dict, metadata)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return ArtifactInfo(path=path, sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data))


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # not supported here (e.g. Windows); the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_artifact(source: Path | str | bytes) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Weights (CPU tensors) and metadata."""
    metadata = read_artifact_metadata(source)
    try:
        if isinstance(source, bytes | bytearray | memoryview):
            tensors = safetensors.torch.load(bytes(source))
        else:
            tensors = safetensors.torch.load_file(str(source), device="cpu")
    except Exception as exc:  # safetensors raises its own error types
        raise ArtifactError(f"unreadable weights: {exc}") from exc
    return dict(tensors), metadata


@dataclass(frozen=True)
class LoadedModel:
    """A trained model ready to predict on raw (unscaled) feature rows."""

    model: nn.Module
    metadata: dict[str, Any]
    feature_names: tuple[str, ...]
    classes: tuple[str, ...]
    mean: npt.NDArray[np.float64] = field(repr=False)
    std: npt.NDArray[np.float64] = field(repr=False)

    def predict_proba(self, features: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Class probabilities, shape (rows, classes), columns in ``classes`` order."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != len(self.feature_names):
            raise ValueError(
                f"expected rows of {len(self.feature_names)} features "
                f"({', '.join(self.feature_names[:3])}, ...), got shape {x.shape}"
            )
        scaled = torch.from_numpy(((x - self.mean) / self.std).astype(np.float32))
        with torch.no_grad():
            probs = torch.softmax(self.model(scaled), dim=1)
        out: npt.NDArray[np.float32] = probs.numpy()
        return out

    def predict(self, features: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Class indices into ``classes``."""
        return np.asarray(self.predict_proba(features).argmax(axis=1), dtype=np.int64)

    def predict_labels(self, features: npt.ArrayLike) -> list[str]:
        return [self.classes[i] for i in self.predict(features)]


def load_model(source: Path | str | bytes) -> LoadedModel:
    """Rebuild the trained model on the CPU, in eval mode, from an artifact."""
    tensors, metadata = load_artifact(source)
    try:
        model, input_dim, n_classes = model_from_architecture(metadata["model"])
        feature_names = tuple(str(n) for n in metadata["feature_names"])
        classes = tuple(str(c) for c in metadata["classes"])
        mean = np.asarray(metadata["scaler"]["mean"], dtype=np.float64)
        std = np.asarray(metadata["scaler"]["std"], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"incomplete trainwire metadata: {exc}") from exc
    if not len(feature_names) == input_dim == len(mean) == len(std) or len(classes) != n_classes:
        raise ArtifactError("metadata disagrees with itself: feature, scaler or class counts")
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise ArtifactError(f"weights do not fit the recorded architecture: {exc}") from exc
    model.eval()
    return LoadedModel(model, metadata, feature_names, classes, mean, std)
