"""Writing a downloaded configuration safely: sha256 and size checked, then renamed into place.

A configuration downloads as ``{dest}/{strategy}/{SYMBOLS}_{TFS}_v{N}/configuration.json``
(the name's parts, sanitised). The bytes go to a temporary file in that directory, are checked
against the header's sha256 and size, made 0644 and renamed over the target only then, so a
corrupt or interrupted download leaves nothing behind and never replaces a good file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from shared import errors
from shared.client.download import FILE_MODE
from shared.results import ConfigurationRef

CONFIGURATION_FILE = "configuration.json"


class ConfigurationDownload:
    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._ref: ConfigurationRef | None = None
        self._parts: list[bytes] = []

    def begin(self, ref: ConfigurationRef) -> None:
        if self._ref is not None:
            raise errors.DataLossError("the server sent a second configuration header")
        self._ref = ref

    def write(self, data: bytes) -> None:
        if self._ref is None:
            raise errors.DataLossError("the server sent data before the configuration header")
        self._parts.append(data)

    def target(self) -> Path:
        if self._ref is None:
            raise errors.DataLossError("the download ended before the configuration header")
        parts = [p for p in self._ref.name.split("/") if p not in ("", ".", "..")]
        return self._directory.joinpath(*parts, CONFIGURATION_FILE)

    def commit(self) -> Path:
        """Check what arrived and rename it into place; the file's path."""
        target = self.target()
        ref = self._ref
        assert ref is not None
        body = b"".join(self._parts)
        digest = hashlib.sha256(body).hexdigest()
        if digest != ref.sha256 or len(body) != ref.size_bytes:
            raise errors.DataLossError(
                f"download of {ref.name} is corrupt: got {len(body)} bytes with sha256 "
                f"{digest[:12]}…, expected {ref.size_bytes} bytes, {ref.sha256[:12]}…"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            dir=target.parent, prefix=".download-", suffix=".json", delete=False
        ) as f:
            temp = Path(f.name)
            try:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            except BaseException:
                temp.unlink(missing_ok=True)
                raise
        try:
            temp.chmod(FILE_MODE)
            temp.replace(target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return target
