"""Under CI a skip is a failure (tests/support/ci_skips.py), checked on a throwaway suite."""

from __future__ import annotations

import pytest

from tests.support import ci_skips

pytest_plugins = ["pytester"]

SUITE = """
import pytest

@pytest.fixture
def tool():
    pytest.skip("tmux is not installed")

def test_passes():
    pass

def test_skips_in_the_body():
    pytest.skip("network namespaces are not available here")

@pytest.mark.skipif(True, reason="docker-compose is not installed")
def test_skipif_mark():
    pass

def test_skips_in_a_fixture(tool):
    pass

@pytest.mark.optional_component("a CUDA device")
def test_optional():
    pytest.skip("no CUDA device here")

@pytest.mark.xfail(reason="known bug", strict=True)
def test_expected_failure():
    assert False
"""

MODULE_SKIP = """
import pytest
pytest.skip("iptables is not installed", allow_module_level=True)

def test_never_collected():
    pass
"""


def _run(pytester: pytest.Pytester) -> pytest.RunResult:
    pytester.makepyfile(test_suite=SUITE, test_module_skip=MODULE_SKIP)
    return pytester.runpytest_inprocess(
        "-rA", "-p", "no:cacheprovider", "-p", "no:asyncio", plugins=[ci_skips]
    )


@pytest.mark.parametrize("value", ["true", "1", "TRUE", "yes"])
def test_under_ci_every_skip_fails_with_its_reason(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CI", value)
    result = _run(pytester)
    # A skip in setup (a skipif mark, a fixture) fails the setup: pytest reports an error.
    result.assert_outcomes(passed=1, failed=1, errors=2, skipped=2, xfailed=1)
    for status, name, reason in [
        ("FAILED", "test_skips_in_the_body", "network namespaces are not available here"),
        ("ERROR", "test_skipif_mark", "docker-compose is not installed"),
        ("ERROR", "test_skips_in_a_fixture", "tmux is not installed"),
    ]:
        result.stdout.fnmatch_lines(
            [
                f"{status} test_suite.py::{name} - skipped under CI (CI={value!r}), which counts"
                f" as a failure: {reason} (*test_suite.py:*)"
            ]
        )
    result.stdout.fnmatch_lines(["SKIPPED*no CUDA device here*"])
    result.stdout.fnmatch_lines(
        [
            "*modules skipped under CI: the run fails*",
            f"skipped under CI (CI={value!r}), which counts as a failure: iptables is not"
            " installed (*test_module_skip.py:3) ?test_module_skip.py?",
        ]
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED


@pytest.mark.parametrize("value", [None, "", "false", "0"])
def test_off_ci_skips_stay_skips(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    result = _run(pytester)
    result.assert_outcomes(passed=1, skipped=5, xfailed=1)  # 4 tests and the skipped module
    assert "skipped under CI" not in result.stdout.str()
    assert result.ret == pytest.ExitCode.OK


def test_a_module_skip_alone_fails_the_run_under_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    pytester.makepyfile(test_module_skip=MODULE_SKIP, test_ok="def test_ok():\n    pass\n")
    result = pytester.runpytest_inprocess("-p", "no:asyncio", plugins=[ci_skips])
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
