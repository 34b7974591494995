"""--log-format json: one parseable JSON object per log line."""

from __future__ import annotations

import json
import logging

from services.cli import _JsonFormatter


def test_json_log_lines_parse_and_carry_the_exception() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord(
            "services.x", logging.WARNING, __file__, 1, "job %s failed", ("abc",), sys.exc_info()
        )
    line = _JsonFormatter().format(record)
    assert "\n" not in line.replace("\\n", "")
    entry = json.loads(line)
    assert entry["level"] == "warning" and entry["logger"] == "services.x"
    assert entry["message"] == "job abc failed"
    assert "ValueError: boom" in entry["exception"]
