"""The safetensors artifact: round trip, metadata, atomic writes, refusal of junk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from shared.artifacts.artifact import (
    METADATA_KEY,
    ArtifactError,
    encode_artifact,
    load_artifact,
    load_model,
    read_artifact_metadata,
    to_jsonable,
    write_artifact,
)
from shared.pipeline.features import resolve_features
from shared.pipeline.indicators import INDICATOR_OUTPUTS, INDICATOR_PARAMS, INDICATOR_TYPES
from shared.pipeline.model import architecture, build_model, layer_layout
from shared.pipeline.packaging import reproduce_section
from shared.spec import (
    FuzzySetSpec,
    IndicatorSpec,
    ModelSpec,
    StrategySpec,
    TrainingRequest,
    default_strategy,
)


def _model_and_metadata() -> tuple[torch.nn.Sequential, dict[str, object]]:
    spec = ModelSpec(hidden_layers=(8, 4), activation="tanh", dropout=0.1)
    model = build_model(5, 3, spec, generator=torch.Generator().manual_seed(1)).eval()
    metadata: dict[str, object] = {
        "model": architecture(5, 3, spec),
        "feature_names": [f"f{i}" for i in range(5)],
        "classes": ["SELL", "HOLD", "BUY"],
        "scaler": {"mean": np.arange(5.0), "std": np.full(5, 2.0)},
        "strategy": default_strategy(),
        "test_metrics": {"accuracy": 0.5, "undefined": float("nan")},
    }
    return model, metadata


def test_round_trip_predicts_like_the_in_memory_model(tmp_path: Path) -> None:
    model, metadata = _model_and_metadata()
    info = write_artifact(tmp_path / "model.safetensors", model.state_dict(), metadata)
    assert info.size_bytes == (tmp_path / "model.safetensors").stat().st_size
    assert len(info.sha256) == 64
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]  # no temp file left

    loaded = load_model(info.path)
    raw = np.random.default_rng(0).normal(size=(32, 5)) * 3 + 1
    scaled = torch.from_numpy(((raw - np.arange(5.0)) / 2.0).astype(np.float32))
    with torch.no_grad():
        expected = model(scaled).argmax(dim=1).numpy()
    np.testing.assert_array_equal(loaded.predict(raw), expected)
    assert loaded.predict_proba(raw).shape == (32, 3)
    assert loaded.predict_labels(raw[:1])[0] in ("SELL", "HOLD", "BUY")
    with pytest.raises(ValueError, match="expected rows of 5"):
        loaded.predict(raw[:, :4])

    tensors, meta = load_artifact(info.path)
    for key, value in model.state_dict().items():
        assert torch.equal(tensors[key], value)
    assert meta["format_version"] == 1
    assert meta["test_metrics"] == {"accuracy": 0.5, "undefined": None}
    assert meta["strategy"]["labels"]["method"] == "zigzag"


def test_metadata_from_bytes_and_with_plain_safetensors(tmp_path: Path) -> None:
    from safetensors import safe_open

    model, metadata = _model_and_metadata()
    blob = encode_artifact(model.state_dict(), metadata)
    assert read_artifact_metadata(blob)["classes"] == ["SELL", "HOLD", "BUY"]
    path = tmp_path / "m.safetensors"
    path.write_bytes(blob)
    with safe_open(str(path), "pt") as handle:
        meta = json.loads(handle.metadata()[METADATA_KEY])
    assert meta["feature_names"] == metadata["feature_names"]
    assert load_model(blob).feature_names == tuple(f"f{i}" for i in range(5))


def test_same_inputs_same_bytes() -> None:
    model, metadata = _model_and_metadata()
    assert encode_artifact(model.state_dict(), metadata) == encode_artifact(
        model.state_dict(), metadata
    )


@pytest.mark.parametrize(
    "blob",
    [b"", b"1234", (10**12).to_bytes(8, "little") + b"{}", (2).to_bytes(8, "little") + b"[]"],
)
def test_junk_is_refused(blob: bytes) -> None:
    with pytest.raises(ArtifactError):
        read_artifact_metadata(blob)


def test_safetensors_without_trainwire_metadata_is_refused() -> None:
    from safetensors.torch import save

    with pytest.raises(ArtifactError, match="not a trainwire artifact"):
        read_artifact_metadata(save({"w": torch.zeros(2)}))


def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, metadata = _model_and_metadata()

    def boom(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("shared.artifacts.artifact.os.replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_artifact(tmp_path / "model.safetensors", model.state_dict(), metadata)
    assert list(tmp_path.iterdir()) == []


def test_to_jsonable() -> None:
    assert to_jsonable({"a": (1, np.float32(0.5), np.int64(2), float("inf"))}) == {
        "a": [1, 0.5, 2, None]
    }
    with pytest.raises(TypeError):
        to_jsonable(object())


def test_the_reproduce_section_resolves_every_indicator_and_maps_every_tensor() -> None:
    """Every indicator type with its parameters left out, on two timeframes."""
    indicators = tuple(IndicatorSpec(id=f"{t}_x", type=t) for t in INDICATOR_TYPES)
    fuzzy_sets = tuple(
        FuzzySetSpec(
            input=f"{t}_x.{INDICATOR_OUTPUTS[t][-1]}", name="m", shape="gaussian", params=(0, 1)
        )
        for t in INDICATOR_TYPES
    )
    strategy = StrategySpec(name="all", indicators=indicators, fuzzy_sets=fuzzy_sets)
    request = TrainingRequest(symbols=("S",), timeframes=("4h", "1h"), strategy=strategy)
    spec = ModelSpec(hidden_layers=(7, 5, 4), activation="gelu", dropout=0.3)
    arch = architecture(2 * len(fuzzy_sets), 3, spec)
    section = json.loads(json.dumps(reproduce_section(request, arch)))

    assert section["bars"]["base_timeframe"] == "4h" and section["bars"]["finest_timeframe"] == "1h"
    for described, kind in zip(section["indicators"], INDICATOR_TYPES, strict=True):
        assert described["type"] == kind
        assert described["params"] == INDICATOR_PARAMS[kind]  # defaults filled in
        assert list(described["outputs"]) == list(INDICATOR_OUTPUTS[kind])
        assert all(isinstance(text, str) and text for text in described["outputs"].values())
    names = [f.column for f in resolve_features(strategy, request.timeframes)]
    assert [f["name"] for f in section["features"]] == names
    assert section["features"][0] == {
        "name": "sma_x.distance:m@4h",
        "timeframe": "4h",
        "indicator": "sma_x",
        "output": "distance",
        "shape": "gaussian",
        "params": [0.0, 1.0],
    }
    assert "erf" in section["network"]["activation"] and "none" in section["network"]["dropout"]

    state = build_model(arch["input_dim"], 3, spec).state_dict()
    layers = layer_layout(arch)
    assert section["network"]["layers"] == layers
    assert sorted(k for layer in layers for k in (layer["weight"], layer["bias"])) == sorted(state)
    for layer in layers:
        assert tuple(state[layer["weight"]].shape) == (layer["out"], layer["in"])
    assert [layer["activation"] for layer in layers] == ["gelu", "gelu", "gelu", None]
