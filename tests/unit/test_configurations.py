"""The configuration repository: versions per family, a latest link, idempotent per job, every
sha256 and field checked before anything is written, names that cannot leave the root, and a
restart that finds every job's configuration again."""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import pytest

from services.orchestrator.configurations import MAX_BYTES, ConfigurationRepository
from shared import errors


def document(**changes: Any) -> dict[str, Any]:
    """A configuration in the format the optimization job writes."""
    base: dict[str, Any] = {
        "kind": "trainwire.configuration",
        "version": 1,
        "strategy": "sma_cross",
        "params": {"fast": "10", "slow": "30"},
        "objective": {"stat": "Sharpe Ratio", "minimize": False},
        "score": {"in_sample": 1.85, "out_of_sample": 0.9},
        "symbols": ["GOOG"],
        "timeframes": ["1d"],
        "data": {"source": "csv", "location": "", "start": None, "end": None, "rows": 2148},
        "settings": {"cash": 10000},
        "sampler": "tpe",
        "seed": 7,
        "trials": 50,
        "in_sample": {"Sharpe Ratio": 1.85},
        "out_of_sample": {"Sharpe Ratio": 0.9},
        "overfit": False,
        "walk_forward_windows": 3,
    }
    base.update(changes)
    return base


def text_of(doc: dict[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True, indent=2) + "\n"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def store(repo: ConfigurationRepository, job_id: str, **changes: Any) -> Any:
    text = text_of(document(**changes))
    return repo.store(job_id, text, sha(text))


def test_versions_count_up_per_family_and_latest_follows(tmp_path: Path) -> None:
    repo = ConfigurationRepository(tmp_path)
    first = store(repo, "job-1")
    second = store(repo, "job-2", params={"fast": "12", "slow": "40"})
    other = store(repo, "job-3", symbols=["EURUSD"], timeframes=["1h"])

    assert (first.name, first.version) == ("sma_cross/GOOG_1d_v1", 1)
    assert (second.name, second.version) == ("sma_cross/GOOG_1d_v2", 2)
    assert (other.name, other.version) == ("sma_cross/EURUSD_1h_v1", 1)
    assert second.params == {"fast": "12", "slow": "40"}
    assert second.objective == "Sharpe Ratio"
    assert (second.in_sample_score, second.out_of_sample_score) == (1.85, 0.9)
    assert second.symbols == ("GOOG",) and second.timeframes == ("1d",)
    assert second.job_id == "job-2" and second.created_at > 0

    for name in ("sma_cross/GOOG_1d", "sma_cross/GOOG_1d_latest"):
        assert repo.get(name).ref == second
    assert repo.get("sma_cross/GOOG_1d_v1").ref == first
    assert os.readlink(tmp_path / "sma_cross" / "GOOG_1d_latest") == "GOOG_1d_v2"
    assert [r.name for r in repo.catalogue()] == [
        "sma_cross/EURUSD_1h_v1",
        "sma_cross/GOOG_1d_v1",
        "sma_cross/GOOG_1d_v2",
    ]
    assert repo.catalogue("rsi_reversion") == []


def test_stored_bytes_are_the_sent_bytes_and_verified(tmp_path: Path) -> None:
    repo = ConfigurationRepository(tmp_path)
    text = text_of(document())
    ref = repo.store("job-1", text, sha(text))
    stored = repo.get(ref.name)
    assert stored.read() == text.encode()
    assert ref.sha256 == sha(text) and ref.size_bytes == len(text.encode())
    assert repo.path(ref.name) == tmp_path / "sma_cross" / "GOOG_1d_v1" / "configuration.json"

    stored.path.write_text(text.replace("1.85", "9.99"))  # the disk changed it
    with pytest.raises(errors.DataLossError):
        repo.get(ref.name).read()


def test_null_scores_are_nan(tmp_path: Path) -> None:
    repo = ConfigurationRepository(tmp_path)
    ref = store(repo, "job-1", score={"in_sample": 1.2, "out_of_sample": None})
    assert ref.in_sample_score == 1.2 and math.isnan(ref.out_of_sample_score)


def test_same_job_again_is_the_same_version_and_a_different_text_is_refused(
    tmp_path: Path,
) -> None:
    repo = ConfigurationRepository(tmp_path)
    ref = store(repo, "job-1")
    assert store(repo, "job-1") == ref
    with pytest.raises(errors.AlreadyExistsError) as caught:
        store(repo, "job-1", params={"fast": "11", "slow": "30"})
    assert "sma_cross/GOOG_1d_v1" in caught.value.message
    assert [r.name for r in repo.catalogue()] == ["sma_cross/GOOG_1d_v1"]


def test_restart_finds_every_job_again(tmp_path: Path) -> None:
    repo = ConfigurationRepository(tmp_path)
    ref = store(repo, "job-1")
    (tmp_path / "sma_cross" / ".tmp-0123abcd").mkdir()  # a store cut off by a crash

    reopened = ConfigurationRepository(tmp_path)
    assert reopened.by_job("job-1") == ref
    assert store(reopened, "job-1") == ref  # the retry after a restart stores nothing new
    with pytest.raises(errors.AlreadyExistsError):
        store(reopened, "job-1", trials=49)
    assert store(reopened, "job-2").version == 2
    assert not list((tmp_path / "sma_cross").glob(".tmp-*"))


def test_sha256_mismatch_and_malformed_sha256(tmp_path: Path) -> None:
    repo = ConfigurationRepository(tmp_path)
    text = text_of(document())
    with pytest.raises(errors.DataLossError) as caught:
        repo.store("job-1", text, sha(text + " "))
    assert caught.value.field == "sha256"
    for bad in ("", "abc", sha(text).upper(), sha(text)[:-1] + "g"):
        with pytest.raises(errors.InvalidArgumentError) as invalid:
            repo.store("job-1", text, bad)
        assert invalid.value.field == "sha256"
    assert repo.catalogue() == [] and repo.by_job("job-1") is None
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"kind": "trainwire.model"}, "configuration_json.kind"),
        ({"version": "1"}, "configuration_json.version"),
        ({"version": 0}, "configuration_json.version"),
        ({"strategy": ""}, "configuration_json.strategy"),
        ({"strategy": "../etc"}, "configuration_json.strategy"),
        ({"strategy": 3}, "configuration_json.strategy"),
        ({"params": ["fast", "10"]}, "configuration_json.params"),
        ({"params": {"fast": 10}}, "configuration_json.params"),
        ({"params": {"": "10"}}, "configuration_json.params"),
        ({"symbols": []}, "configuration_json.symbols"),
        ({"symbols": "GOOG"}, "configuration_json.symbols"),
        ({"symbols": ["GOOG", ""]}, "configuration_json.symbols"),
        ({"timeframes": [1]}, "configuration_json.timeframes"),
        ({"objective": "Sharpe Ratio"}, "configuration_json.objective"),
        ({"objective": {"stat": "", "minimize": False}}, "configuration_json.objective"),
        ({"objective": {"stat": "Sharpe Ratio", "minimize": 1}}, "configuration_json.objective"),
        ({"score": {"in_sample": "1.2"}}, "configuration_json.score"),
        ({"score": {"in_sample": True}}, "configuration_json.score"),
    ],
)
def test_bad_fields_are_named(tmp_path: Path, changes: dict[str, Any], field: str) -> None:
    repo = ConfigurationRepository(tmp_path)
    with pytest.raises(errors.InvalidArgumentError) as caught:
        store(repo, "job-1", **changes)
    assert caught.value.field == field
    assert repo.catalogue() == [] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1, 2]",
        '{"kind": "trainwire.configuration", "score": {"in_sample": NaN}}',
        "[" * 100_000 + "]" * 100_000,
    ],
)
def test_unparseable_documents(tmp_path: Path, text: str) -> None:
    repo = ConfigurationRepository(tmp_path)
    with pytest.raises(errors.InvalidArgumentError) as caught:
        repo.store("job-1", text, sha(text))
    assert caught.value.field == "configuration_json"


def test_size_cap(tmp_path: Path) -> None:
    repo = ConfigurationRepository(tmp_path)
    text = text_of(document(padding="x" * MAX_BYTES))
    with pytest.raises(errors.InvalidArgumentError) as caught:
        repo.store("job-1", text, sha(text))
    assert caught.value.field == "configuration_json"
    assert str(MAX_BYTES) in caught.value.message


def test_bad_job_id(tmp_path: Path) -> None:
    repo = ConfigurationRepository(tmp_path)
    text = text_of(document())
    with pytest.raises(errors.InvalidArgumentError) as caught:
        repo.store("../job", text, sha(text))
    assert caught.value.field == "job_id"


@pytest.mark.parametrize(
    "name",
    [
        "",
        "sma_cross",
        "../sma_cross/GOOG_1d_v1",
        "sma_cross/../../etc/passwd",
        "sma_cross/..",
        "./GOOG_1d_v1",
        "sma_cross/GOOG 1d",
        "sma_cross/GOOG_1d/configuration.json",
        "sma_cross/.tmp-0123",
        "sma_cross/GOOG\x00_1d",
        "a" * 300,
    ],
)
def test_names_that_are_not_configuration_names(tmp_path: Path, name: str) -> None:
    repo = ConfigurationRepository(tmp_path)
    store(repo, "job-1")
    with pytest.raises(errors.InvalidArgumentError) as caught:
        repo.get(name)
    assert caught.value.field == "name"


@pytest.mark.parametrize(
    "name", ["sma_cross/GOOG_1d_v2", "sma_cross/EURUSD_1d", "rsi_reversion/GOOG_1d_v1"]
)
def test_unknown_names(tmp_path: Path, name: str) -> None:
    repo = ConfigurationRepository(tmp_path)
    store(repo, "job-1")
    with pytest.raises(errors.NotFoundError) as caught:
        repo.get(name)
    assert caught.value.field == "name"


def test_names_are_sanitised_into_one_component_each(tmp_path: Path) -> None:
    repo = ConfigurationRepository(tmp_path)
    ref = store(repo, "job-1", symbols=["../EUR/USD", "GBP"], timeframes=["1h"])
    assert ref.name == "sma_cross/EUR_USD_GBP_1h_v1"
    assert ref.symbols == ("../EUR/USD", "GBP")
    assert repo.get(ref.name).ref == ref
    assert [p.name for p in tmp_path.iterdir()] == ["sma_cross"]


def test_the_document_must_name_what_the_job_optimized(tmp_path: Path) -> None:
    repo = ConfigurationRepository(tmp_path)
    text = text_of(document())
    for key, strategy, symbols, timeframes in (
        ("strategy", "rsi_reversion", ("GOOG",), ("1d",)),
        ("symbols", "sma_cross", ("EURUSD",), ("1d",)),
        ("timeframes", "sma_cross", ("GOOG",), ("1h",)),
    ):
        with pytest.raises(errors.InvalidArgumentError) as caught:
            repo.store(
                "job-1", text, sha(text), strategy=strategy, symbols=symbols, timeframes=timeframes
            )
        assert caught.value.field == f"configuration_json.{key}"
        assert "job-1" in caught.value.message
    ref = repo.store(
        "job-1", text, sha(text), strategy="sma_cross", symbols=("GOOG",), timeframes=("1d",)
    )
    assert ref.name == "sma_cross/GOOG_1d_v1"
