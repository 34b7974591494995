"""Where a job's bars came from: every result names its data."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class SeriesProvenance:
    """One series a job trained on: where it was read from, its range and size."""

    symbol: str
    timeframe: str
    file: str = ""
    """Relative to its data directory or dataset; empty for the synthetic market."""
    start: float = 0.0
    """Open time of the first bar, seconds since the epoch (UTC)."""
    end: float = 0.0
    """Open time of the last bar."""
    rows: int = 0
    resampled_from: str = ""
    """The finer timeframe it was resampled from, when it was."""


@dataclass(frozen=True, kw_only=True)
class DataProvenance:
    """Where a job's bars came from: every result names its data."""

    source: str
    """``synthetic``, ``directory`` or ``dataset``."""
    location: str = ""
    """The directory, ``name@sha256-prefix`` of a dataset, or ``seed N`` (synthetic)."""
    series: tuple[SeriesProvenance, ...] = ()
    timezone: str = "UTC"

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.series)

    @property
    def start(self) -> float:
        return min((s.start for s in self.series), default=0.0)

    @property
    def end(self) -> float:
        return max((s.end for s in self.series), default=0.0)
