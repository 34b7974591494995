"""The orchestrator's command line: static node addresses are checked before anything starts,
and the queue and node-TTL flags reach its configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from services import cli
from services.orchestrator.config import OrchestratorConfig


@pytest.mark.parametrize("node", ["unix:/tmp/trainer.sock", "host name:50052", "h:0", "h:５０"])
def test_a_static_node_that_cannot_be_dialled_stops_the_start(
    node: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = cli.main(["orchestrator", "--node", node, "--state-dir", str(tmp_path / "state")])
    assert code == 2
    assert "--node" in capsys.readouterr().err
    assert not (tmp_path / "state").exists()


def test_queue_timeout_and_node_ttl_reach_the_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: list[OrchestratorConfig] = []

    async def fake_serve(config: OrchestratorConfig) -> None:
        seen.append(config)

    monkeypatch.setattr("services.orchestrator.server.serve", fake_serve)
    argv = ["orchestrator", "--node", "127.0.0.1:50052", "--state-dir", str(tmp_path)]
    assert cli.main([*argv, "--queue-timeout", "90", "--node-ttl", "30"]) == 0
    assert (seen[0].queue_timeout_s, seen[0].node_ttl_s) == (90.0, 30.0)
    monkeypatch.setenv("TRAINWIRE_QUEUE_TIMEOUT", "5")
    parsed = cli.build_parser().parse_args(argv)
    assert parsed.queue_timeout == 5.0 and parsed.node_ttl == 600.0


def test_job_limits_reach_the_config_and_a_bad_one_stops_the_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    seen: list[OrchestratorConfig] = []

    async def fake_serve(config: OrchestratorConfig) -> None:
        seen.append(config)

    monkeypatch.setattr("services.orchestrator.server.serve", fake_serve)
    argv = ["orchestrator", "--state-dir", str(tmp_path)]
    assert cli.main([*argv, "--max-parameters", "1000", "--max-bars", "5000"]) == 0
    assert (seen[0].limits.max_parameters, seen[0].limits.max_bars) == (1000, 5000)
    assert cli.main([*argv, "--max-bars", "0"]) == 2
    assert "max_bars" in capsys.readouterr().err
