"""Datasets: OHLCV files uploaded to the orchestrator, as plain dataclasses.

A dataset is a named, versioned set of files; each file is content-addressed by its sha256, and a
version is named by the sha256 of its manifest (the files' names and hashes), so a job pins the
exact bytes it trains on and a trainer caches a file once whatever dataset it appears in.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class DatasetFile:
    filename: str
    symbol: str
    timeframe: str
    sha256: str
    size_bytes: int
    rows: int = 0
    start: float = 0.0
    """Open time of the first bar, seconds since the epoch (UTC)."""
    end: float = 0.0


@dataclass(frozen=True, kw_only=True)
class DatasetInfo:
    name: str
    sha256: str
    """The manifest's sha256: names this version."""
    files: tuple[DatasetFile, ...] = ()
    created_at: float = 0.0

    @property
    def size_bytes(self) -> int:
        return sum(f.size_bytes for f in self.files)

    @property
    def ref(self) -> str:
        """``name@sha256`` of this version."""
        return f"{self.name}@{self.sha256}"
