"""Where the CLI takes the bearer token from: TRAINWIRE_TOKEN, --token-file, or --token (which
works but warns: the command line shows in ``ps``) — one source at a time."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from services.cli import _security, build_parser


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRAINWIRE_TOKEN", raising=False)
    monkeypatch.delenv("TRAINWIRE_TOKEN_FILE", raising=False)


def _token(*argv: str) -> str:
    return _security(build_parser().parse_args(["nodes", *argv])).token


def test_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINWIRE_TOKEN", "from-env")
    assert _token() == "from-env"


def test_token_from_a_file_without_its_newline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "token"
    path.write_text("from-file\n")
    assert _token("--token-file", str(path)) == "from-file"
    monkeypatch.setenv("TRAINWIRE_TOKEN_FILE", str(path))
    assert _token() == "from-file"
    assert not caplog.records


def test_a_token_on_the_command_line_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert _token("--token", "typed") == "typed"
    assert any("ps" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_two_sources_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "token"
    path.write_text("from-file")
    with pytest.raises(ValueError, match="--token and --token-file"):
        _token("--token", "typed", "--token-file", str(path))
    monkeypatch.setenv("TRAINWIRE_TOKEN", "from-env")
    with pytest.raises(ValueError, match="TRAINWIRE_TOKEN and --token-file"):
        _token("--token-file", str(path))


@pytest.mark.parametrize(("content", "problem"), [("", "empty"), ("two\nlines", "printable")])
def test_a_bad_token_file_says_what_is_wrong(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "token"
    path.write_text(content)
    with pytest.raises(ValueError, match=problem):
        _token("--token-file", str(path))


def test_a_missing_token_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        _token("--token-file", str(tmp_path / "missing"))
