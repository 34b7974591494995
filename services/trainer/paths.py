"""Paths the trainer builds from outside input (job ids, dataset filenames) stay inside its
work dir: every one is resolved, symlinks and all, and checked before it is touched."""

from __future__ import annotations

from pathlib import Path

from shared import errors


class OutsideWorkDirError(errors.FailedPreconditionError):
    """A path the trainer built resolves outside the directory it must stay in (a symlink)."""


def resolve_inside(root: Path, path: Path | str) -> Path:
    """``path`` (relative to ``root``, or absolute) with every symlink resolved, if it lies
    strictly inside ``root`` (resolved too); raise ``OutsideWorkDirError`` otherwise. Call it
    before creating, reading or removing anything at a path built from outside input."""
    base = root.resolve()
    resolved = (base / path).resolve()
    if resolved == base or not resolved.is_relative_to(base):
        raise OutsideWorkDirError(f"{path} resolves to {resolved}, outside {base}; not touching it")
    return resolved
