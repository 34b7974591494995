"""The request stream `trainwire datasets upload` sends: header, then per file its size,
sha256 and gzip-compressed bytes; bad files are refused before anything is sent."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest

from shared.client.datasets import UploadStream, check_name, default_name, prepare
from shared.rpc.v1 import datasets_pb2 as dpb


def csv(path: Path, rows: int) -> Path:
    lines = [",Open,High,Low,Close,Volume"]
    lines += [f"2017-04-19 {i % 24:02d}:00:00,1.07,1.08,1.06,1.07{i % 10},{i}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_stream_is_header_then_each_file_with_size_sha256_and_gzip_bytes(tmp_path: Path) -> None:
    a, b = csv(tmp_path / "EURUSD.csv", 40_000), csv(tmp_path / "GOOG_1d.csv", 50)
    chunks = list(UploadStream("fx", prepare([a, b]), chunk_bytes=64 * 1024))
    assert chunks[0].WhichOneof("kind") == "header" and chunks[0].header.name == "fx"
    files: list[tuple[dpb.DatasetFileHeader, bytes]] = []
    for chunk in chunks[1:]:
        if chunk.WhichOneof("kind") == "file":
            files.append((chunk.file, b""))
        else:
            assert chunk.WhichOneof("kind") == "data" and 0 < len(chunk.data) <= 64 * 1024
            header, body = files[-1]
            files[-1] = (header, body + chunk.data)
    assert [h.filename for h, _ in files] == ["EURUSD.csv", "GOOG_1d.csv"]
    for (header, body), path in zip(files, (a, b), strict=True):
        raw = path.read_bytes()
        assert header.compression == "gzip"
        assert header.size_bytes == len(raw)
        assert header.sha256 == hashlib.sha256(raw).hexdigest()
        assert gzip.decompress(body) == raw
        assert len(body) < len(raw) / 2  # compressed, not merely wrapped
    # More than one data message for the big file: it is chunked, not sent as one message.
    assert sum(1 for c in chunks if c.WhichOneof("kind") == "data") > 2


def test_a_file_that_changes_while_sent_stops_the_stream_and_says_which(tmp_path: Path) -> None:
    a, b = csv(tmp_path / "A.csv", 100), csv(tmp_path / "B.csv", 100)
    stream = UploadStream("d", prepare([a, b]))
    csv(a, 120)  # edited after it was hashed
    chunks = list(stream)
    assert "A.csv changed while it was being uploaded" in stream.problem
    assert [c.file.filename for c in chunks if c.WhichOneof("kind") == "file"] == ["A.csv"]


def test_a_file_that_vanishes_while_sent_is_reported_not_raised_inside_grpc(
    tmp_path: Path,
) -> None:
    a = csv(tmp_path / "A.csv", 100)
    stream = UploadStream("d", prepare([a]))
    a.unlink()
    list(stream)
    assert stream.problem.startswith(f"cannot read {a}")


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ([], "at least one"),
        (["missing.csv"], "no such file"),
        (["notes.txt"], "not a .csv or .parquet"),
        (["EURUSD.csv", "sub/EURUSD.csv"], "have the same name"),
    ],
)
def test_bad_files_are_refused_before_anything_is_sent(
    tmp_path: Path, names: list[str], message: str
) -> None:
    paths = []
    for name in names:
        path = tmp_path / name
        path.parent.mkdir(exist_ok=True)
        if name != "missing.csv":
            csv(path, 3)
        paths.append(path)
    with pytest.raises(ValueError, match=message):
        prepare(paths)


def test_dataset_names() -> None:
    assert default_name([Path("data/EURUSD.csv")]) == "EURUSD"
    assert default_name([Path("my prices (2018).csv")]) == "my-prices--2018-"
    assert check_name("eurusd-2018.v2") == "eurusd-2018.v2"
    for bad in ("", "-x", "a/b", "x" * 65, "é"):
        with pytest.raises(ValueError, match="cannot name a dataset"):
            check_name(bad)
