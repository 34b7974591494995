"""Under CI, a skipped test is a failed test.

The rule: when the environment variable ``CI`` is set to a true value (``1``, ``true``, ``yes``,
``on``; any case), every skip — a ``pytest.skip(...)`` in a test or fixture, a ``skipif`` /
``skip`` mark — is reported as a failure (an error when it happened in setup, as a mark's or a
fixture's does) whose message carries the skip's reason. A module-level skip stays listed as a
skip (failing collection would stop the whole run) but fails the run, with its reason in the
summary. A test that may legitimately not run in CI (it needs hardware CI does not have, such
as a GPU) says so with ``@pytest.mark.optional_component("what it needs")``; its skips stay
skips. Expected failures (``xfail``) are not skips and are left alone.

So CI cannot be green with the real-process tests (tmux, docker-compose, network namespaces,
iptables) quietly not run: ``.ci/run`` installs those tools, and if that did not work the suite
says which test needed what. Off CI, skips behave as usual, so a laptop without tmux still runs
everything else.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

OPTIONAL_MARK = "optional_component"
_TRUE = frozenset({"1", "true", "yes", "on"})


def under_ci() -> bool:
    """Whether ``CI`` is set to a true value."""
    return os.environ.get("CI", "").strip().lower() in _TRUE


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (path, line, "Skipped: reason")
        path, line, message = longrepr
        text = str(message).removeprefix("Skipped: ")
        return f"{text} ({path}:{int(line) + 1})"
    return str(longrepr)


def _message(reason: str) -> str:
    return (
        f"skipped under CI (CI={os.environ.get('CI', '')!r}), which counts as a failure: {reason}"
        f"\nInstall what the test needs (.ci/run does), or, if CI can never provide it, mark the"
        f" test @pytest.mark.{OPTIONAL_MARK}(...)."
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{OPTIONAL_MARK}(reason): needs something CI cannot provide (a GPU); its skips stay "
        "skips under CI, where every other skip is a failure",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if (
        report.skipped
        and not hasattr(report, "wasxfail")
        and under_ci()
        and item.get_closest_marker(OPTIONAL_MARK) is None
    ):
        report.outcome = "failed"
        report.longrepr = _message(_reason(report))
    return report


_MODULE_SKIPS = pytest.StashKey[list[str]]()


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """A module-level skip stays a skip in the report (a collection error would stop the whole
    run), is remembered, and fails the session at the end."""
    report = yield
    if report.skipped and under_ci():
        skips = collector.config.stash.setdefault(_MODULE_SKIPS, [])
        skips.append(f"{_reason(report)} [{report.nodeid}]")
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if session.config.stash.get(_MODULE_SKIPS, []) and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    skips = config.stash.get(_MODULE_SKIPS, [])
    if skips:
        terminalreporter.section("modules skipped under CI: the run fails", red=True)
        for reason in skips:
            terminalreporter.line(_message(reason))
