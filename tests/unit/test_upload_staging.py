"""The upload staging on its own, with no gRPC server: a cut stream resumes at its staged length
(also after a restart), nothing inflates past the declared size, bad gzip, a short stream, a
checksum or a file that is not a model each end the way the sender is told, and stale or
discarded stagings leave nothing behind."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save

from services.orchestrator.inflate import compressed_limit
from services.orchestrator.upload_session import ReceivedModel, Session
from services.orchestrator.upload_staging import Staging, UploadHeader
from shared import errors

JOB = "job-1"
CHUNK = 4096


def _model(metadata: dict[str, object] | None = None, rows: int = 256) -> bytes:
    rng = np.random.default_rng(3)
    tensors = {"layer.weight": rng.normal(0, 0.05, (rows, 64)).astype(np.float32)}
    meta = {"format_version": 1} if metadata is None else metadata
    return save(tensors, metadata={"trainwire": json.dumps(meta)})


def _members(raw: bytes, block: int = 16 * 1024) -> bytes:
    """``raw`` as concatenated gzip members, one per block, as the trainer sends it."""
    return b"".join(
        gzip.compress(raw[i : i + block], 1, mtime=0) for i in range(0, len(raw), block)
    )


def _header(raw: bytes, **fields: object) -> UploadHeader:
    values: dict[str, object] = {
        "job_id": JOB,
        "sha256": hashlib.sha256(raw).hexdigest(),
        "size_bytes": len(raw),
        "stream_id": "members;block=16384",
    }
    values.update(fields)
    return UploadHeader(**values)  # type: ignore[arg-type]


def _send(staging: Staging, header: UploadHeader, data: bytes) -> Session:
    session = Session(staging, header)
    session.start()
    for i in range(0, len(data), CHUNK):
        session.accept(data[i : i + CHUNK])
    return session


def _files(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


def test_a_whole_stream_is_stored_verified_and_its_staging_goes(tmp_path: Path) -> None:
    staging = Staging(tmp_path)
    raw = _model({"format_version": 1, "feature_names": ["rsi"]})
    packed = _members(raw)
    session = _send(staging, _header(raw, compressed_size_bytes=len(packed)), packed)
    model = session.finish()
    assert isinstance(model, ReceivedModel)
    assert model.path.read_bytes() == raw
    assert (model.sha256, model.size_bytes) == (hashlib.sha256(raw).hexdigest(), len(raw))
    assert model.received_bytes == len(packed)
    assert model.metadata["feature_names"] == ["rsi"]
    session.end()
    assert staging.status(JOB) is None
    assert _files(tmp_path) == []


@pytest.mark.parametrize("restart", [False, True], ids=["same-process", "after-restart"])
def test_a_cut_stream_resumes_at_its_staged_length(tmp_path: Path, restart: bool) -> None:
    staging = Staging(tmp_path)
    raw = _model()
    packed = _members(raw)
    cut = len(packed) // 2 + 123  # inside a member
    first = _send(staging, _header(raw), packed[:cut])
    first.end()  # the call broke off: its bytes stay staged
    status = staging.status(JOB)
    assert status is not None
    assert status.received_bytes == cut
    assert status.record.sha256 == hashlib.sha256(raw).hexdigest()
    if restart:
        (tmp_path / f"{JOB}-leftover.part").write_bytes(b"x")  # a killed call's inflated file
        staging = Staging(tmp_path)
        assert not list(tmp_path.glob("*.part"))
    second = _send(staging, _header(raw, resume_offset=cut), packed[cut:])
    model = second.finish()
    assert model.path.read_bytes() == raw
    assert model.received_bytes == len(packed)
    second.end()
    assert _files(tmp_path) == []


def test_a_resume_before_the_staged_end_cuts_the_staging_there(tmp_path: Path) -> None:
    staging = Staging(tmp_path)
    raw = _model()
    packed = _members(raw)
    cut = len(packed) // 2
    _send(staging, _header(raw), packed[:cut]).end()
    back = cut - 1000  # the sender was told less than was staged
    _send(staging, _header(raw, resume_offset=back), packed[back : back + 500]).end()
    status = staging.status(JOB)
    assert status is not None and status.received_bytes == back + 500
    session = _send(staging, _header(raw, resume_offset=back + 500), packed[back + 500 :])
    assert session.finish().path.read_bytes() == raw
    session.end()
    assert _files(tmp_path) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"resume_offset": 10**6}, "expected resume_offset {cut}"),
        ({"stream_id": "another"}, "expected resume_offset 0"),
    ],
    ids=["past-the-staged-end", "another-stream"],
)
def test_a_resume_that_does_not_fit_names_the_offset_and_keeps_the_staging(
    tmp_path: Path, change: dict[str, object], expected: str
) -> None:
    staging = Staging(tmp_path)
    raw = _model()
    packed = _members(raw)
    cut = len(packed) // 2
    _send(staging, _header(raw), packed[:cut]).end()
    session = Session(staging, _header(raw, **{"resume_offset": cut + 1, **change}))
    with pytest.raises(errors.FailedPreconditionError) as err:
        session.start()
    assert err.value.field == "resume_offset"
    assert err.value.reason == "RESUME_OFFSET_MISMATCH"
    assert expected.format(cut=cut) in err.value.message
    session.end()
    status = staging.status(JOB)
    assert status is not None and status.received_bytes == cut


def test_a_stream_that_ends_inside_a_member_is_truncated_and_stays_resumable(
    tmp_path: Path,
) -> None:
    staging = Staging(tmp_path)
    raw = _model()
    packed = _members(raw)
    session = _send(staging, _header(raw), packed[:-5])
    with pytest.raises(errors.DataLossError) as err:
        session.finish()
    assert err.value.reason == "TRUNCATED"
    assert "inside a gzip member" in err.value.message
    assert f"resume with resume_offset {len(packed) - 5}" in err.value.message
    session.end()
    status = staging.status(JOB)
    assert status is not None and status.received_bytes == len(packed) - 5


def test_a_stream_short_of_the_declared_size_between_members_is_truncated(
    tmp_path: Path,
) -> None:
    staging = Staging(tmp_path)
    raw = _model()
    first_member = gzip.compress(raw[: 16 * 1024], 1, mtime=0)
    session = _send(staging, _header(raw), first_member)
    with pytest.raises(errors.DataLossError) as err:
        session.finish()
    assert err.value.reason == "TRUNCATED"
    assert "between members" in err.value.message
    assert f"{16 * 1024} of the declared {len(raw)} bytes" in err.value.message
    session.end()
    assert staging.status(JOB) is not None


def _bad_magic(packed: bytes) -> bytes:
    return b"\x1f\x8c" + packed[2:]


def _bad_crc(packed: bytes) -> bytes:
    first = gzip.compress(b"a" * 5000, 1, mtime=0)
    crc = first[-8:-4]
    return first[:-8] + bytes(b ^ 0xFF for b in crc) + first[-4:] + packed


@pytest.mark.parametrize("corrupt", [_bad_magic, _bad_crc], ids=["header", "crc"])
def test_corrupt_gzip_is_data_loss_and_the_staging_is_discarded(
    tmp_path: Path, corrupt: object
) -> None:
    staging = Staging(tmp_path)
    raw = _model()
    assert callable(corrupt)
    data = corrupt(_members(raw))
    session = Session(staging, _header(raw))
    session.start()
    with pytest.raises(errors.DataLossError) as err:
        for i in range(0, len(data), CHUNK):
            session.accept(data[i : i + CHUNK])
    assert "the gzip stream is corrupt" in err.value.message
    status = staging.status(JOB)
    assert status is not None and status.received_bytes < CHUNK  # the bad chunk was not staged
    assert not session.keep
    session.end()
    assert _files(tmp_path) == []


def test_a_gzip_bomb_stops_one_byte_past_the_declared_size(tmp_path: Path) -> None:
    staging = Staging(tmp_path)
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024), 9)  # 64 MiB inflated, ~64 KiB sent
    header = UploadHeader(job_id=JOB, sha256="0" * 64, size_bytes=1000)
    session = Session(staging, header)
    session.start()
    with pytest.raises(errors.DataLossError) as err:
        session.accept(bomb)
    assert "inflates past the declared 1000 bytes" in err.value.message
    assert session.inflated_bytes <= 1001
    assert max(p.stat().st_size for p in tmp_path.glob("*.part")) <= 1000
    session.end()
    assert _files(tmp_path) == []


def test_a_compressed_stream_past_its_limit_is_refused_before_inflating(tmp_path: Path) -> None:
    staging = Staging(tmp_path)
    session = Session(staging, UploadHeader(job_id=JOB, sha256="0" * 64, size_bytes=100))
    session.start()
    with pytest.raises(errors.DataLossError) as err:
        session.accept(b"\0" * (compressed_limit(100) + 1))
    assert f"passes {compressed_limit(100)} bytes" in err.value.message
    assert session.inflated_bytes == 0
    session.end()
    assert _files(tmp_path) == []


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"sha256": "ab" * 32}, "CHECKSUM_MISMATCH"),
        ({"compressed_size_bytes": 1}, "SIZE_MISMATCH"),
    ],
    ids=["sha256", "compressed-size"],
)
def test_a_whole_stream_that_does_not_match_its_header_is_discarded(
    tmp_path: Path, fields: dict[str, object], reason: str
) -> None:
    staging = Staging(tmp_path)
    raw = _model()
    session = _send(staging, _header(raw, **fields), _members(raw))
    with pytest.raises(errors.DataLossError) as err:
        session.finish()
    assert err.value.reason == reason
    session.end()
    assert _files(tmp_path) == []


def _bad_json_header(raw: bytes) -> bytes:
    return raw[:8] + b"x" + raw[9:]  # the header's opening brace


@pytest.mark.parametrize(
    ("raw", "reason", "said"),
    [
        (b"not a model at all " * 100, "NOT_A_MODEL", "not a safetensors file"),
        (_bad_json_header(_model()), "NOT_A_MODEL", "not a safetensors file"),
        (_model({"format_version": 99}), "BAD_MODEL_METADATA", "format"),
        (_model({"format_version": 1, "feature_names": 7}), "BAD_MODEL_METADATA", "feature_names"),
    ],
    ids=["not-safetensors", "bad-header", "format-version", "metadata-type"],
)
def test_a_file_that_is_not_a_sound_model_is_invalid_and_discarded(
    tmp_path: Path, raw: bytes, reason: str, said: str
) -> None:
    staging = Staging(tmp_path)
    session = _send(staging, _header(raw), _members(raw))
    with pytest.raises(errors.InvalidArgumentError) as err:
        session.finish()
    assert err.value.reason == reason
    assert said in err.value.message
    session.end()
    assert _files(tmp_path) == []


def test_sweep_drops_stagings_past_the_ttl_and_keeps_the_rest(tmp_path: Path) -> None:
    staging = Staging(tmp_path, ttl_s=3600)
    raw = _model()
    packed = _members(raw)
    for job in ("old", "young"):
        _send(staging, _header(raw, job_id=job), packed[:1000]).end()
    past = time.time() - 7200
    os.utime(tmp_path / "old.gz", (past, past))
    (tmp_path / "orphan.json").write_text("{}")  # a record without its stream
    (tmp_path / "not.ours.gz").write_bytes(b"x")  # not named by a job id: left alone
    os.utime(tmp_path / "not.ours.gz", (past, past))
    staging.sweep()
    assert staging.status("old") is None
    young = staging.status("young")
    assert young is not None and young.received_bytes == 1000
    assert _files(tmp_path) == ["not.ours.gz", "young.gz", "young.json"]
    # A new staging sweeps as it opens: the young one goes once it is stale too.
    os.utime(tmp_path / "young.gz", (past, past))
    Staging(tmp_path, ttl_s=3600)
    assert _files(tmp_path) == ["not.ours.gz"]


def test_a_new_stream_replaces_what_was_staged_for_the_job(tmp_path: Path) -> None:
    staging = Staging(tmp_path)
    raw = _model()
    packed = _members(raw)
    _send(staging, _header(raw, stream_id="old"), packed[:5000]).end()
    _send(staging, _header(raw, stream_id="new"), packed[:100]).end()
    status = staging.status(JOB)
    assert status is not None
    assert (status.record.stream_id, status.received_bytes) == ("new", 100)


def test_discard_drops_one_jobs_staging_and_refuses_a_path(tmp_path: Path) -> None:
    staging = Staging(tmp_path)
    raw = _model()
    for job in ("a", "b"):
        _send(staging, _header(raw, job_id=job), _members(raw)[:2000]).end()
    staging.discard("a")
    staging.discard("a")  # nothing left: no error
    assert staging.status("a") is None
    assert staging.status("b") is not None
    assert _files(tmp_path) == ["b.gz", "b.json"]
    with pytest.raises(errors.InvalidArgumentError) as err:
        staging.discard("../b")
    assert err.value.field == "job_id"
    assert _files(tmp_path) == ["b.gz", "b.json"]


def test_a_torn_record_reads_as_nothing_staged(tmp_path: Path) -> None:
    staging = Staging(tmp_path)
    raw = _model()
    _send(staging, _header(raw), _members(raw)[:2000]).end()
    (tmp_path / f"{JOB}.json").write_text('{"job_id": "job-1", "sha2')
    assert staging.status(JOB) is None
    session = Session(staging, _header(raw, resume_offset=2000))
    with pytest.raises(errors.FailedPreconditionError, match="expected resume_offset 0"):
        session.start()


def test_a_session_ended_before_it_started_touches_nothing(tmp_path: Path) -> None:
    staging = Staging(tmp_path)
    raw = _model()
    session = Session(staging, _header(raw))
    session.end()  # the call was cancelled before its first step ran
    session.start()
    session.accept(_members(raw))
    assert _files(tmp_path) == []


@pytest.mark.parametrize(
    ("fields", "error", "field"),
    [
        ({"sha256": "ABC"}, errors.InvalidArgumentError, "sha256"),
        ({"compression": "zstd"}, errors.InvalidArgumentError, "compression"),
        ({"size_bytes": 0}, errors.InvalidArgumentError, "size_bytes"),
        ({"size_bytes": 10_001}, errors.ResourceExhaustedError, "size_bytes"),
        ({"resume_offset": -1}, errors.InvalidArgumentError, "resume_offset"),
        ({"job_id": "../x"}, errors.InvalidArgumentError, "job_id"),
    ],
)
def test_a_header_check_names_the_field_to_change(
    fields: dict[str, object], error: type[errors.TrainwireError], field: str
) -> None:
    header = _header(b"x" * 100, **fields)
    with pytest.raises(error) as err:
        header.check(max_bytes=10_000)
    assert err.value.field == field
    _header(b"x" * 100).check(max_bytes=10_000)  # the unchanged header passes


def test_a_level_zero_stream_is_accepted_like_any_gzip(tmp_path: Path) -> None:
    """Stored deflate blocks are gzip too: the receiver takes a stream the sender did not
    compress (how the upload benchmark measures raw bytes over the same path)."""
    staging = Staging(tmp_path)
    raw = _model()
    stored = zlib.compressobj(0, zlib.DEFLATED, 31)
    packed = stored.compress(raw) + stored.flush()
    assert len(packed) > len(raw)
    session = _send(staging, _header(raw), packed)
    assert session.finish().path.read_bytes() == raw
    session.end()
