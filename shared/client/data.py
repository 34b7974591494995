"""Where a job's bars come from, for ``Client.train(..., data=...)`` and ``submit``.

    from shared.client import data

    tw.train(["EURUSD"], ["1h"], data=data.directory("fx", start="2017-06-01"))
    tw.train(["EURUSD"], ["1h"], data=data.dataset("eurusd-2018"))
    tw.train(["ACME"], ["1h"], data=data.synthetic(bars=5000))

Each returns a ``shared.spec.DataSpec`` (a frozen dataclass). ``start``/``end`` are ISO-8601
dates or timestamps bounding the bars used (both inclusive; UTC unless they name a zone);
``timezone`` is the IANA zone that naive timestamps in the files are taken in (default UTC).
A request without ``data`` trains ``SYNTH`` symbols on the synthetic market; any other symbol
needs one of these.
"""

from __future__ import annotations

from shared.spec import DataSource, DataSpec

_DEFAULT = DataSpec()


def directory(path: str = ".", *, start: str = "", end: str = "", timezone: str = "") -> DataSpec:
    """``{SYMBOL}_{timeframe}.csv|parquet`` (or ``{SYMBOL}.csv|parquet``) files in ``path``,
    relative to the trainer's ``--data-dir``."""
    return DataSpec(source=DataSource.DIRECTORY, path=path, start=start, end=end, timezone=timezone)


def dataset(name: str, *, start: str = "", end: str = "", timezone: str = "") -> DataSpec:
    """A dataset uploaded to the orchestrator (``Client.upload_dataset``), its latest version."""
    return DataSpec(
        source=DataSource.DATASET, dataset=name, start=start, end=end, timezone=timezone
    )


def synthetic(
    *, bars: int = _DEFAULT.bars, seed: int = _DEFAULT.seed, start: str = "", end: str = ""
) -> DataSpec:
    """The built-in deterministic synthetic market: ``bars`` base-timeframe bars per symbol from
    ``seed``, starting 2020-01-01."""
    return DataSpec(source=DataSource.SYNTHETIC, bars=bars, seed=seed, start=start, end=end)
