"""A model download writes model.safetensors and metadata.json together, verified, or
nothing at all."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest

from shared import errors
from shared.client.download import Download
from shared.jobs import ModelRef

WEIGHTS = b"\x08\x00\x00\x00\x00\x00\x00\x00{}      " * 100


def ref(sha: str = hashlib.sha256(WEIGHTS).hexdigest(), size: int = len(WEIGHTS)) -> ModelRef:
    return ModelRef(name="s/EURUSD_1h_v3", strategy="s", version=3, sha256=sha, size_bytes=size)


def fetched(dest: Path, model: ModelRef) -> Download:
    download = Download(dest)
    download.begin(model)
    for i in range(0, len(WEIGHTS), 333):
        download.write(WEIGHTS[i : i + 333])
    return download


def test_both_files_land_together_readable_by_all(tmp_path: Path) -> None:
    download = fetched(tmp_path, ref())
    path = download.commit(download.verified(), json.dumps({"feature_names": ["a"]}))
    assert path == tmp_path / "s" / "EURUSD_1h_v3" / "model.safetensors"
    assert path.read_bytes() == WEIGHTS
    assert json.loads((path.parent / "metadata.json").read_text()) == {"feature_names": ["a"]}
    assert sorted(p.name for p in path.parent.iterdir()) == ["metadata.json", "model.safetensors"]
    for p in path.parent.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o644


def test_corrupt_weights_leave_nothing_behind(tmp_path: Path) -> None:
    download = fetched(tmp_path, ref(sha="0" * 64))
    with pytest.raises(errors.DataLossError, match="is corrupt"):
        download.verified()
    download.abandon()
    assert list((tmp_path / "s" / "EURUSD_1h_v3").iterdir()) == []


@pytest.mark.parametrize(
    ("described", "metadata", "message"),
    [
        (ref(sha="1" * 64), "{}", "describes weights with sha256 111111111111"),
        (ref(), "", "sent no metadata"),
        (ref(), "{not json", "is not JSON"),
        (ref(), "[1, 2]", "not a JSON object"),
    ],
)
def test_metadata_that_does_not_fit_the_weights_keeps_neither(
    tmp_path: Path, described: ModelRef, metadata: str, message: str
) -> None:
    download = fetched(tmp_path, ref())
    download.verified()
    with pytest.raises(errors.DataLossError, match=message):
        download.commit(described, metadata)
    download.abandon()
    assert list((tmp_path / "s" / "EURUSD_1h_v3").iterdir()) == []


def test_a_redownload_replaces_both_files(tmp_path: Path) -> None:
    for version in (1, 2):
        download = fetched(tmp_path, ref())
        path = download.commit(download.verified(), json.dumps({"n": version}))
    assert json.loads((path.parent / "metadata.json").read_text()) == {"n": 2}
    assert len(list(path.parent.iterdir())) == 2
