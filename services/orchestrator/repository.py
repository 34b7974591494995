"""The model repository (KTRDR ModelStorage): versioned, atomic, sanitised.

Layout under ``root``::

    {strategy}/{symbols}_{timeframes}_v{N}/model.safetensors   weights (+ embedded metadata)
    {strategy}/{symbols}_{timeframes}_v{N}/metadata.json       the same metadata, readable
    {strategy}/{symbols}_{timeframes}_latest -> {..}_v{N}       symlink to the newest version
    .jobs/{job_id}.json                                         a job whose model was identical
                                                                to the newest version (kept once)

A version is assembled in a temporary directory beside its final place and renamed into it, so
a reader sees a whole version or none; the ``latest`` symlink is replaced by rename too.
"""

from __future__ import annotations

import json
import logging
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
from shared.artifacts.metadata import ArtifactError, assessment_from_json, provenance_from_json
from shared.ids import check_job_id
from shared.jobs import TRADING_STATS, ModelRef

_LOGGER = logging.getLogger(__name__)
WEIGHTS = "model.safetensors"
METADATA = "metadata.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_VERSION = re.compile(r"(?P<base>.+)_v(?P<n>[0-9]+)")
ALIASES = ".jobs"
"""``{job_id}.json`` per job whose model was identical to a stored version (not stored again)."""
NAME_MAX = 200
"""Longest model name a request may give: two components of at most 80 characters, '/', and
a version suffix."""


def safe_name(text: str, fallback: str = "model") -> str:
    """A single path component: letters, digits, '.', '_', '-'; never '.', '..' or hidden."""
    cleaned = _UNSAFE.sub("_", text).strip("._-")[:80]
    return cleaned or fallback


def version_dir(root: Path, name: str, what: str, listing: str) -> Path:
    """The directory ``name`` (``STRATEGY/BASE_vN``, or ``STRATEGY/BASE[_latest]`` for the
    newest) stands for under ``root``, after checking it is such a name: two plain path
    components, nothing that could leave ``root``. ``what``/``listing`` word the errors."""
    if len(name) > NAME_MAX:
        raise errors.InvalidArgumentError(
            f"{len(name)} characters; a {what} name is at most {NAME_MAX} "
            f"(STRATEGY/SYMBOLS_TIMEFRAMES[_vN] as {listing} shows)",
            field="name",
        )
    parts = name.strip("/").split("/")
    if len(parts) != 2 or any(p != safe_name(p, "") for p in parts):
        raise errors.InvalidArgumentError(
            f"{name!r} is not a {what} name; use STRATEGY/SYMBOLS_TIMEFRAMES[_vN] as "
            f"{listing} shows",
            field="name",
        )
    leaf = parts[1]
    if not _VERSION.fullmatch(leaf):
        leaf = leaf.removesuffix("_latest") + "_latest"
    return root / parts[0] / leaf


@dataclass(frozen=True)
class StoredModel:
    ref: ModelRef
    directory: Path
    metadata: dict[str, Any]

    @property
    def weights_path(self) -> Path:
        return self.directory / WEIGHTS


class ModelRepository:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._by_job: dict[str, str] = {}
        for model in self._scan():
            if model.ref.job_id:
                self._by_job[model.ref.job_id] = model.ref.name
        self._aliases = self.root / ALIASES  # made by the first identical retrain
        for alias in self._aliases.glob("*.json"):
            try:
                document = json.loads(alias.read_text())
                self._by_job[check_job_id(str(document["job_id"]))] = str(document["name"])
            except (OSError, ValueError, KeyError, TypeError, errors.TrainwireError) as exc:
                _LOGGER.warning("skipping unreadable model alias %s: %s", alias, exc)

    # -- writing -------------------------------------------------------------------------------

    def store(
        self,
        *,
        job_id: str,
        staged_weights: Path,
        sha256: str,
        metadata: dict[str, Any],
        strategy: str,
        symbols: tuple[str, ...],
        timeframes: tuple[str, ...],
    ) -> ModelRef:
        """Move ``staged_weights`` into a new version; idempotent per job.

        A model byte for byte the same as the newest version of its family (same sha256: an
        identical retrain) is not stored again: the job is recorded as having produced that
        version, and its ref (with the first job's id) is returned."""
        with self._lock:
            existing = self.by_job(job_id)
            if existing is not None:
                staged_weights.unlink(missing_ok=True)
                return existing
            strategy_dir = self.root / safe_name(strategy, "strategy")
            strategy_dir.mkdir(parents=True, exist_ok=True)
            base = f"{safe_name('+'.join(symbols))}_{safe_name('+'.join(timeframes))}"
            version = self._next_version(strategy_dir, base)
            newest = self._newest(strategy_dir, base, version - 1)
            if newest is not None and newest.sha256 == sha256:
                self._alias(check_job_id(job_id), newest.name)
                staged_weights.unlink(missing_ok=True)
                _LOGGER.info("job %s: model identical to %s, not stored again", job_id, newest.name)
                return newest
            final = strategy_dir / f"{base}_v{version}"
            tmp = strategy_dir / f".tmp-{uuid.uuid4().hex}"
            tmp.mkdir()
            try:
                size = staged_weights.stat().st_size
                ref = ModelRef(
                    name=f"{strategy_dir.name}/{final.name}",
                    strategy=strategy_dir.name,
                    version=version,
                    sha256=sha256,
                    size_bytes=size,
                    symbols=symbols,
                    timeframes=timeframes,
                    created_at=time.time(),
                    job_id=job_id,
                    **_described(metadata),
                )
                os.replace(staged_weights, tmp / WEIGHTS)
                document = {**metadata, "repository": _ref_to_json(ref)}
                _write_file(tmp / METADATA, json.dumps(document, indent=2, sort_keys=True).encode())
                _fsync_dir(tmp)
                os.rename(tmp, final)
                _fsync_dir(strategy_dir)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            self._point_latest(strategy_dir, base, final.name)
            self._by_job[job_id] = ref.name
            _LOGGER.info("stored model %s (%d bytes, job %s)", ref.name, size, job_id)
            return ref

    def _newest(self, strategy_dir: Path, base: str, version: int) -> ModelRef | None:
        if version < 1:
            return None
        try:
            return self._load(strategy_dir / f"{base}_v{version}").ref
        except (OSError, ValueError, KeyError) as exc:
            _LOGGER.warning("cannot read %s/%s_v%d: %s", strategy_dir, base, version, exc)
            return None

    def _alias(self, job_id: str, name: str) -> None:
        """Record (durably) that ``job_id`` produced the stored model ``name``."""
        self._aliases.mkdir(exist_ok=True)
        path = self._aliases / f"{job_id}.json"
        tmp = self._aliases / f".{job_id}-{uuid.uuid4().hex}.tmp"
        try:
            _write_file(tmp, json.dumps({"job_id": job_id, "name": name}).encode())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(self._aliases)
        self._by_job[job_id] = name

    @staticmethod
    def _next_version(strategy_dir: Path, base: str) -> int:
        versions = [0]
        for entry in strategy_dir.iterdir():
            m = _VERSION.fullmatch(entry.name)
            if m and m.group("base") == base:
                versions.append(int(m.group("n")))
        return max(versions) + 1

    @staticmethod
    def _point_latest(strategy_dir: Path, base: str, target: str) -> None:
        link = strategy_dir / f"{base}_latest"
        tmp = strategy_dir / f".tmp-link-{uuid.uuid4().hex}"
        os.symlink(target, tmp)
        os.replace(tmp, link)

    # -- reading -------------------------------------------------------------------------------

    def by_job(self, job_id: str) -> ModelRef | None:
        name = self._by_job.get(job_id)
        return self.get(name).ref if name else None

    def get(self, name: str) -> StoredModel:
        """``strategy/base_vN``, or ``strategy/base`` / ``strategy/base_latest`` for the newest."""
        directory = version_dir(self.root, name, "model", "ListModels")
        if not (directory / METADATA).is_file():
            raise errors.NotFoundError(f"no model {name!r}; see ListModels", field="name")
        return self._load(directory.resolve())

    def catalogue(self, strategy: str = "") -> list[ModelRef]:
        """Every stored model (optionally one strategy's), sorted by strategy, family, version."""
        refs = [m.ref for m in self._scan() if not strategy or m.ref.strategy == strategy]
        return sorted(refs, key=model_key)

    def _scan(self) -> list[StoredModel]:
        found = []
        for meta in sorted(self.root.glob(f"*/*_v*/{METADATA}")):
            try:
                found.append(self._load(meta.parent))
            except (OSError, ValueError, KeyError) as exc:
                _LOGGER.warning("skipping unreadable model %s: %s", meta.parent, exc)
        return found

    @staticmethod
    def _load(directory: Path) -> StoredModel:
        document = json.loads((directory / METADATA).read_text())
        r = document["repository"]
        ref = ModelRef(
            name=r["name"],
            strategy=r["strategy"],
            version=int(r["version"]),
            sha256=r["sha256"],
            size_bytes=int(r["size_bytes"]),
            symbols=tuple(r["symbols"]),
            timeframes=tuple(r["timeframes"]),
            created_at=float(r["created_at"]),
            job_id=r["job_id"],
            **_described(document),
        )
        return StoredModel(ref=ref, directory=directory, metadata=document)


def _described(metadata: dict[str, Any]) -> dict[str, Any]:
    """A model's data provenance and assessment, from its metadata (absent in older models)."""
    described: dict[str, Any] = {}
    try:
        if "provenance" in metadata:
            described["data"] = provenance_from_json(metadata["provenance"])
        if "assessment" in metadata:
            described["assessment"] = assessment_from_json(metadata["assessment"])
        backtest = metadata.get("backtest")
        stats = backtest.get("stats") if isinstance(backtest, dict) else None
        if isinstance(stats, dict):
            described["trading"] = {
                name: float(stats[name])
                for name in TRADING_STATS
                if isinstance(stats.get(name), int | float) and not isinstance(stats[name], bool)
            }
    except ArtifactError as exc:  # checked before storing; only a hand-edited file gets here
        _LOGGER.warning("model metadata unreadable: %s", exc)
    return described


def model_key(ref: ModelRef) -> tuple[str, str, int]:
    """The catalogue's order (strategy, family, version) and the key of ListModels' tokens."""
    return (ref.strategy, ref.name.rsplit("_v", 1)[0], ref.version)


def _ref_to_json(ref: ModelRef) -> dict[str, Any]:
    return {
        "name": ref.name,
        "strategy": ref.strategy,
        "version": ref.version,
        "sha256": ref.sha256,
        "size_bytes": ref.size_bytes,
        "symbols": list(ref.symbols),
        "timeframes": list(ref.timeframes),
        "created_at": ref.created_at,
        "job_id": ref.job_id,
    }


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
