"""The configuration repository: each optimization's best configuration, versioned and verified.

Layout under ``root``::

    {strategy}/{symbols}_{timeframes}_v{N}/configuration.json   the JSON the trainer sent, as sent
    {strategy}/{symbols}_{timeframes}_v{N}/repository.json      name, version, sha256, job, time
    {strategy}/{symbols}_{timeframes}_latest -> {..}_v{N}       symlink to the newest version

``configuration.json`` is kept byte for byte, so its sha256 is the one the trainer computed and
the one a downloader checks. A version is assembled in a temporary directory beside its final
place and renamed into it, so a reader sees a whole version or none; the ``latest`` symlink is
replaced by rename too. Storing is idempotent per job: a retry of the same text returns the
version already stored, a different text for the same job is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared import errors
from shared.ids import check_job_id
from shared.results import ConfigurationRef

from .configuration_document import bad_field, parse_configuration
from .repository import safe_name, version_dir

_LOGGER = logging.getLogger(__name__)
CONFIGURATION = "configuration.json"
RECORD = "repository.json"
MAX_BYTES = 1024 * 1024
"""Largest configuration accepted: a few KiB in practice (parameters, stats, data range)."""
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_VERSION = re.compile(r"(?P<base>.+)_v(?P<n>[0-9]+)")
KEY_SHAPE = (str, str, int)
"""The types of ``configuration_key``: ListConfigurations' page tokens carry it."""


@dataclass(frozen=True)
class StoredConfiguration:
    ref: ConfigurationRef
    path: Path
    """The version's ``configuration.json``."""

    def read(self) -> bytes:
        """The stored bytes, checked against the sha256 they were stored with."""
        data = self.path.read_bytes()
        if hashlib.sha256(data).hexdigest() != self.ref.sha256:
            raise errors.DataLossError(
                f"configuration {self.ref.name} no longer matches its sha256 on disk; "
                "store it again by re-running the optimization"
            )
        return data


def configuration_key(ref: ConfigurationRef) -> tuple[str, str, int]:
    """The catalogue's order (strategy, family, version) and the key of its page tokens."""
    return (ref.strategy, ref.name.rsplit("_v", 1)[0], ref.version)


class ConfigurationRepository:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        for leftover in self.root.glob("*/.tmp-*"):  # a store cut off by a crash
            if leftover.is_symlink():
                leftover.unlink()
            else:
                shutil.rmtree(leftover, ignore_errors=True)
        self._by_job: dict[str, str] = {}
        for stored in self._scan():
            if stored.ref.job_id:
                self._by_job[stored.ref.job_id] = stored.ref.name

    # -- writing -------------------------------------------------------------------------------

    def store(
        self,
        job_id: str,
        text: str,
        sha256: str,
        *,
        strategy: str | None = None,
        symbols: tuple[str, ...] | None = None,
        timeframes: tuple[str, ...] | None = None,
    ) -> ConfigurationRef:
        """Store ``text`` (the configuration JSON) as a new version; idempotent per job.

        ``strategy``, ``symbols``, ``timeframes``, when given, are what the job optimized: the
        document must name the same (``InvalidArgumentError`` on the field otherwise)."""
        check_job_id(job_id)
        data = text.encode("utf-8")
        if not _SHA256_RE.fullmatch(sha256):
            raise errors.InvalidArgumentError(
                "must be the 64 lowercase hex digits of configuration_json's sha256",
                field="sha256",
            )
        if len(data) > MAX_BYTES:
            raise errors.InvalidArgumentError(
                f"{len(data)} bytes; a configuration is at most {MAX_BYTES} bytes",
                field="configuration_json",
            )
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise errors.DataLossError(
                f"configuration_json's sha256 is {actual}, not the {sha256} sent; send the "
                "sha256 of the exact UTF-8 bytes",
                field="sha256",
            )
        document = parse_configuration(text)
        for key, expected in (
            ("strategy", strategy),
            ("symbols", None if symbols is None else list(symbols)),
            ("timeframes", None if timeframes is None else list(timeframes)),
        ):
            if expected is not None and document[key] != expected:
                bad_field(key, f"is {document[key]!r}, but job {job_id} optimized {expected!r}")
        with self._lock:
            existing = self.by_job(job_id)
            if existing is not None:
                if existing.sha256 != sha256:
                    raise errors.AlreadyExistsError(
                        f"job {job_id} already stored a different configuration ({existing.name})",
                        field="job_id",
                    )
                return existing
            return self._write(job_id, data, sha256, document)

    def _write(
        self, job_id: str, data: bytes, sha256: str, document: dict[str, Any]
    ) -> ConfigurationRef:
        strategy_dir = self.root / safe_name(document["strategy"], "strategy")
        strategy_dir.mkdir(parents=True, exist_ok=True)
        symbols = tuple(document["symbols"])
        timeframes = tuple(document["timeframes"])
        base = f"{safe_name('+'.join(symbols))}_{safe_name('+'.join(timeframes))}"
        version = _next_version(strategy_dir, base)
        final = strategy_dir / f"{base}_v{version}"
        record = {
            "name": f"{strategy_dir.name}/{final.name}",
            "strategy": strategy_dir.name,
            "version": version,
            "sha256": sha256,
            "size_bytes": len(data),
            "symbols": list(symbols),
            "timeframes": list(timeframes),
            "created_at": time.time(),
            "job_id": job_id,
        }
        tmp = strategy_dir / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            _write_file(tmp / CONFIGURATION, data)
            _write_file(tmp / RECORD, json.dumps(record, indent=2, sort_keys=True).encode())
            _fsync_dir(tmp)
            os.rename(tmp, final)
            _fsync_dir(strategy_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _point_latest(strategy_dir, base, final.name)
        ref = _ref(record, document)
        self._by_job[job_id] = ref.name
        _LOGGER.info("stored configuration %s (%d bytes, job %s)", ref.name, len(data), job_id)
        return ref

    # -- reading -------------------------------------------------------------------------------

    def by_job(self, job_id: str) -> ConfigurationRef | None:
        name = self._by_job.get(job_id)
        return self.get(name).ref if name else None

    def get(self, name: str) -> StoredConfiguration:
        """``strategy/base_vN``, or ``strategy/base`` / ``strategy/base_latest`` for the newest."""
        directory = version_dir(self.root, name, "configuration", "ListConfigurations")
        if not (directory / CONFIGURATION).is_file() or not (directory / RECORD).is_file():
            raise errors.NotFoundError(
                f"no configuration {name!r}; see ListConfigurations", field="name"
            )
        return self._load(directory.resolve())

    def path(self, name: str) -> Path:
        """The ``configuration.json`` of ``name`` (as ``get`` resolves it)."""
        return self.get(name).path

    def catalogue(self, strategy: str = "") -> list[ConfigurationRef]:
        """Every stored configuration (optionally one strategy's), sorted by strategy, family,
        version: the order of ``ModelRepository.catalogue``."""
        refs = [s.ref for s in self._scan() if not strategy or s.ref.strategy == strategy]
        return sorted(refs, key=configuration_key)

    def _scan(self) -> list[StoredConfiguration]:
        found = []
        for record in sorted(self.root.glob(f"*/*_v*/{RECORD}")):
            if record.parent.is_symlink():
                continue
            try:
                found.append(self._load(record.parent))
            except (OSError, ValueError, KeyError, TypeError, errors.TrainwireError) as exc:
                _LOGGER.warning("skipping unreadable configuration %s: %s", record.parent, exc)
        return found

    @staticmethod
    def _load(directory: Path) -> StoredConfiguration:
        record = json.loads((directory / RECORD).read_text())
        document = parse_configuration((directory / CONFIGURATION).read_text())
        return StoredConfiguration(ref=_ref(record, document), path=directory / CONFIGURATION)


def _score(score: dict[str, Any], key: str) -> float:
    value = score.get(key)
    return float(value) if isinstance(value, int | float) else math.nan


def _ref(record: dict[str, Any], document: dict[str, Any]) -> ConfigurationRef:
    score = document.get("score", {})
    return ConfigurationRef(
        name=str(record["name"]),
        strategy=str(record["strategy"]),
        version=int(record["version"]),
        sha256=str(record["sha256"]),
        size_bytes=int(record["size_bytes"]),
        symbols=tuple(str(s) for s in record["symbols"]),
        timeframes=tuple(str(t) for t in record["timeframes"]),
        created_at=float(record["created_at"]),
        job_id=str(record["job_id"]),
        params=dict(document["params"]),
        objective=str(document["objective"]["stat"]),
        in_sample_score=_score(score, "in_sample"),
        out_of_sample_score=_score(score, "out_of_sample"),
    )


def _next_version(strategy_dir: Path, base: str) -> int:
    versions = [0]
    for entry in strategy_dir.iterdir():
        m = _VERSION.fullmatch(entry.name)
        if m and m.group("base") == base:
            versions.append(int(m.group("n")))
    return max(versions) + 1


def _point_latest(strategy_dir: Path, base: str, target: str) -> None:
    link = strategy_dir / f"{base}_latest"
    tmp = strategy_dir / f".tmp-link-{uuid.uuid4().hex}"
    os.symlink(target, tmp)
    os.replace(tmp, link)


def _write_file(path: Path, data: bytes) -> None:
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
