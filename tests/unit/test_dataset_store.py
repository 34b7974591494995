"""The dataset store's rules and disk layout, and the trainer's checks of what it is sent."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from services.orchestrator.datasets import DatasetStore, FileFacts, StagedFile
from services.trainer.datasets import DatasetCache, _check_manifest
from shared import errors
from shared.datasets import (
    DatasetFile,
    DatasetInfo,
    manifest_sha256,
    manifest_text,
    split_filename,
)
from shared.pipeline.market import DataError


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="needs coreutils' sha256sum")
def test_a_version_is_the_sha256_of_what_sha256sum_prints_for_its_files(tmp_path: Path) -> None:
    files = {"GOOG.csv": b"goog bars\n", "EURUSD_1h.csv": b"eurusd bars\n"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    printed = subprocess.run(
        ["sha256sum", *sorted(files)], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout
    pairs = [(name, _sha(data)) for name, data in files.items()]
    assert manifest_text(pairs) == printed
    assert manifest_sha256(pairs) == _sha(printed.encode())
    assert manifest_sha256(reversed(pairs)) == manifest_sha256(pairs)  # order does not matter


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("GOOG.csv", ("GOOG", "")),
        ("EURUSD_1h.csv", ("EURUSD", "1h")),
        ("EUR_USD.csv", ("EUR_USD", "")),
        ("BTC-USD_4h.parquet", ("BTC-USD", "4h")),
        ("ES.1_15m.csv", ("ES.1", "15m")),
    ],
)
def test_a_filename_names_its_symbol_and_maybe_its_timeframe(
    filename: str, expected: tuple[str, str]
) -> None:
    assert split_filename(filename) == expected


def _staged(store: DatasetStore, folder: Path, name: str, data: bytes) -> StagedFile:
    path = folder / name
    path.write_bytes(data)
    return StagedFile(
        filename=name,
        path=path,
        sha256=_sha(data),
        size_bytes=len(data),
        facts=FileFacts(symbol=name.split(".")[0], timeframe="1d", rows=2, start=0.0, end=1.0),
    )


def test_a_restart_drops_uploads_a_stop_cut_off(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)
    folder = store.upload_dir()
    (folder / "GOOG.csv").write_bytes(b"half a file")
    DatasetStore(tmp_path)
    assert not list((tmp_path / "tmp").iterdir())


def test_an_unreadable_manifest_keeps_every_file_at_delete(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)
    store.commit("a", [_staged(store, store.upload_dir(), "A.csv", b"a")])
    store.commit("b", [_staged(store, store.upload_dir(), "B.csv", b"b")])
    info_b = store.get("b")
    (tmp_path / "names" / "b" / f"{info_b.sha256}.json").write_text("{not json")
    assert [d.name for d in store.listing()] == ["a"]  # skipped, not a crash
    store.delete("a")
    assert sorted(p.name for p in (tmp_path / "blobs").iterdir()) == sorted(
        [_sha(b"a"), _sha(b"b")]
    )  # b's manifest may list anything: nothing is removed on a guess


def test_a_commit_of_bytes_already_stored_keeps_one_copy(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)
    first = store.commit("a", [_staged(store, store.upload_dir(), "A.csv", b"same")])
    second = store.commit("b", [_staged(store, store.upload_dir(), "B.csv", b"same")])
    assert first.files[0].sha256 == second.files[0].sha256
    assert [p.name for p in (tmp_path / "blobs").iterdir()] == [_sha(b"same")]
    assert not [p for p in (tmp_path / "tmp").rglob("*") if p.is_file()]  # moved or dropped


def _info(files: list[tuple[str, bytes]], name: str = "d") -> DatasetInfo:
    entries = tuple(
        DatasetFile(filename=f, symbol="S", timeframe="1d", sha256=_sha(b), size_bytes=len(b))
        for f, b in files
    )
    sha = manifest_sha256((f.filename, f.sha256) for f in entries)
    return DatasetInfo(name=name, sha256=sha, files=entries)


def test_the_trainer_takes_only_the_manifest_it_asked_for() -> None:
    good = _info([("GOOG.csv", b"g")])
    _check_manifest(good, "d", good.sha256)
    bad_cases = {
        "a path out": _info([("../../etc/passwd.csv", b"x")]),
        "another dataset": _info([("GOOG.csv", b"g")], name="other"),
        "files that hash to another version": DatasetInfo(
            name="d", sha256=_sha(b"nope"), files=good.files
        ),
        "a name twice": _info([("GOOG.csv", b"g"), ("GOOG.csv", b"h")]),
    }
    for why, info in bad_cases.items():
        with pytest.raises(DataError, match="bad manifest"):
            _check_manifest(info, "d", "")
            pytest.fail(f"took a manifest with {why}")
    with pytest.raises(DataError, match="pinned"):
        _check_manifest(_info([("EURUSD.csv", b"e")]), "d", good.sha256)


def test_the_job_dataset_folder_links_into_the_cache_and_never_follows_a_planted_link(
    tmp_path: Path,
) -> None:
    cache = DatasetCache(tmp_path / "work")
    info = _info([("GOOG.csv", b"bars")])
    blob = tmp_path / "work" / "datasets" / "blobs" / info.files[0].sha256
    blob.write_bytes(b"bars")
    outside = tmp_path / "precious"
    outside.mkdir()
    job_dir = tmp_path / "work" / "jobs" / "j1"
    job_dir.mkdir(parents=True)
    os.symlink(outside, job_dir / "dataset")  # planted: the folder must not land there
    folder = cache._link(info, job_dir)
    assert folder == (job_dir / "dataset").resolve() and not folder.is_symlink()
    assert (folder / "GOOG.csv").read_bytes() == b"bars"
    assert os.path.samefile(folder / "GOOG.csv", blob)  # a link, not a copy
    assert not list(outside.iterdir())


def test_a_relative_work_dir_still_gives_the_job_readable_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``trainwire trainer --work-dir work`` (relative, as the README runs it): the job's
    dataset folder holds the real files, never links that resolve against another directory."""
    monkeypatch.chdir(tmp_path)
    cache = DatasetCache(Path("work"))
    info = _info([("GOOG.csv", b"bars"), ("EURUSD.csv", b"more bars")])
    for file, body in zip(info.files, (b"bars", b"more bars"), strict=True):
        (tmp_path / "work" / "datasets" / "blobs" / file.sha256).write_bytes(body)
    job_dir = Path("work") / "jobs" / "j1"
    job_dir.parent.mkdir()
    folder = cache._link(info, job_dir)
    assert (folder / "GOOG.csv").read_bytes() == b"bars"
    assert (folder / "EURUSD.csv").read_bytes() == b"more bars"


def test_a_file_missing_from_the_cache_is_a_data_error_not_a_dangling_link(
    tmp_path: Path,
) -> None:
    cache = DatasetCache(tmp_path / "work")
    info = _info([("GOOG.csv", b"bars")])
    (tmp_path / "work" / "jobs").mkdir()
    with pytest.raises(DataError, match="missing from this node's cache"):
        cache._link(info, tmp_path / "work" / "jobs" / "j1")


def test_a_bad_name_is_refused_before_any_disk_work() -> None:
    with pytest.raises(errors.InvalidArgumentError) as err:
        split_filename("../GOOG.csv", "file.filename")
    assert err.value.field == "file.filename"
