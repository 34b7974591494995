"""The one reader of artifact metadata: every key present has the type its readers rely on."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import save

from shared.artifacts.metadata import ArtifactError, check_metadata, read_artifact_metadata


def _blob(text: str) -> bytes:
    return save({"w": np.zeros(2, dtype=np.float32)}, metadata={"trainwire": text})


def test_the_summary_is_what_get_model_shows() -> None:
    summary = check_metadata(
        {
            "format_version": 1,
            "feature_names": ["rsi", "macd"],
            "train_metrics": {"loss": 0.5, "epochs_run": 3},
            "test_metrics": {"accuracy": 0.75, "f1_BUY": None},
        }
    )
    assert summary.feature_names == ("rsi", "macd")
    assert summary.training_metrics == {"loss": 0.5, "epochs_run": 3.0}
    assert summary.test_metrics == {"accuracy": 0.75}  # undefined metrics are stored as null
    assert check_metadata({"format_version": 1}).feature_names == ()


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"format_version": 1, "feature_names": 7}, "feature_names must be a list of strings"),
        ({"format_version": 1, "test_metrics": {"a": True}}, "test_metrics must be an object"),
        ({"format_version": 1, "model": [1]}, "model must be an object"),
        ({"format_version": 1, "strategy_name": 3}, "strategy_name must be a string"),
        ({"format_version": True}, "format True"),
        ({}, "format None"),
    ],
)
def test_a_wrong_type_is_named(metadata: dict[str, object], message: str) -> None:
    with pytest.raises(ArtifactError, match=message):
        check_metadata(metadata)
    with pytest.raises(ArtifactError, match=message):
        read_artifact_metadata(_blob(json.dumps(metadata)))


def test_non_json_numbers_are_refused() -> None:
    with pytest.raises(ArtifactError, match="NaN"):
        read_artifact_metadata(_blob('{"format_version": 1, "test_metrics": {"a": NaN}}'))
