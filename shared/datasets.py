"""Datasets: OHLCV files uploaded to the orchestrator, as plain dataclasses.

A dataset is a named, versioned set of files; each file is content-addressed by its sha256, and a
version is named by the sha256 of its manifest (the files' names and hashes), so a job pins the
exact bytes it trains on and a trainer caches a file once whatever dataset it appears in.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from shared import errors
from shared.spec import shown

NAME_MAX = 64
FILENAME_MAX = 128
_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_FILENAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SYMBOL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,31}")
_TIMEFRAME_RE = re.compile(r"[1-9][0-9]{0,3}(m|h|d|w)")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
EXTENSIONS = (".csv", ".parquet")
LATEST = "latest"
MANIFEST_FORMAT = 1


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


# -- the rules for names and versions, the same on the orchestrator and the trainer ------------


def check_dataset_name(name: str, field: str = "name") -> str:
    """Return ``name`` if it is 1-64 ASCII letters, digits, '.', '_' or '-' and not only dots;
    raise ``InvalidArgumentError`` naming ``field`` otherwise."""
    if not name:
        raise errors.InvalidArgumentError("a dataset name is required", field=field)
    if not (name.isascii() and _NAME_RE.fullmatch(name)) or not name.strip("."):
        raise errors.InvalidArgumentError(
            f"{shown(name)} is not a dataset name: use 1-{NAME_MAX} letters, digits, '.', '_' "
            "or '-' (not only dots)",
            field=field,
        )
    return name


def is_sha256(value: str) -> bool:
    """64 lowercase hex digits."""
    return value.isascii() and _SHA256_RE.fullmatch(value) is not None


def check_sha256(value: str, field: str) -> str:
    if not (value.isascii() and _SHA256_RE.fullmatch(value)):
        raise errors.InvalidArgumentError(
            f"{shown(value)} is not a sha256: use its 64 lowercase hex digits", field=field
        )
    return value


def split_filename(filename: str, field: str = "file.filename") -> tuple[str, str]:
    """``(symbol, timeframe)`` named by a dataset filename (timeframe "" for ``{SYMBOL}.csv``);
    ``InvalidArgumentError`` naming ``field`` for anything that is not one safe path component
    ``[A-Za-z0-9][A-Za-z0-9._-]{0,127}`` ending in ``.csv`` or ``.parquet``."""
    if not filename:
        raise errors.InvalidArgumentError("a filename is required", field=field)
    if not (filename.isascii() and _FILENAME_RE.fullmatch(filename)):
        raise errors.InvalidArgumentError(
            f"{shown(filename)} is not a dataset filename: use one name (no directories) of "
            f"1-{FILENAME_MAX} letters, digits, '.', '_' or '-', starting with a letter or "
            "digit, e.g. EURUSD_1h.csv or GOOG.csv",
            field=field,
        )
    ext = next((e for e in EXTENSIONS if filename.endswith(e)), None)
    if ext is None:
        raise errors.InvalidArgumentError(
            f"{shown(filename)}: a dataset file ends in .csv or .parquet", field=field
        )
    stem = filename.removesuffix(ext)
    symbol, _, timeframe = stem.rpartition("_")
    if not (symbol and _TIMEFRAME_RE.fullmatch(timeframe)):
        symbol, timeframe = stem, ""
    if not _SYMBOL_RE.fullmatch(symbol):
        raise errors.InvalidArgumentError(
            f"{shown(filename)}: the symbol {shown(symbol)} is not one a request can name: "
            "use 1-32 letters, digits, '.', '_' or '-' before the extension (and the "
            "optional _TIMEFRAME), starting with a letter or digit",
            field=field,
        )
    return symbol, timeframe


def manifest_text(files: Iterable[tuple[str, str]]) -> str:
    """The text a version's sha256 is taken of: ``{sha256}  {filename}\\n`` per
    ``(filename, sha256)``, sorted by filename — what ``sha256sum`` prints for the files."""
    return "".join(f"{sha}  {name}\n" for name, sha in sorted(files))


def manifest_sha256(files: Iterable[tuple[str, str]]) -> str:
    return hashlib.sha256(manifest_text(files).encode()).hexdigest()
