"""docker-compose.yml and the Dockerfiles: validated by Docker Compose itself, and checked for
what an operator relies on (healthchecks through grpc.health.v1, volumes, non-root, ports, and
the bearer token both services need: the trainer listens on all interfaces of its container)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
TOKEN = "compose-test-token"


def _run_compose_config(token: str | None) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("docker-compose")
    if tool is not None:
        command = [tool, "config"]
    elif shutil.which("docker") is not None:
        command = ["docker", "compose", "config"]
    else:
        pytest.skip("docker-compose is not installed (.ci/run installs Debian's docker-compose)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINWIRE_")}
    if token is not None:
        env["TRAINWIRE_TOKEN"] = token
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
    plugin = "docker compose" in " ".join(command)
    if done.returncode != 0 and plugin and "TRAINWIRE_TOKEN" not in done.stderr:
        pytest.skip(f"docker compose unusable here: {done.stderr.strip()[:200]}")
    return done


def _compose_config() -> dict[str, Any]:
    done = _run_compose_config(TOKEN)
    assert done.returncode == 0, done.stderr
    parsed: dict[str, Any] = yaml.safe_load(done.stdout)
    return parsed


def _targets(volumes: list[Any]) -> set[str]:
    """Mount targets, from the long form (dicts) or the short one (``src:target[:mode]``)."""
    out = set()
    for volume in volumes:
        if isinstance(volume, dict):
            out.add(str(volume["target"]))
        else:
            out.add(str(volume).split(":")[1])
    return out


def test_compose_file_is_valid_and_complete() -> None:
    config = _compose_config()
    services = config["services"]
    assert set(services) == {"orchestrator", "trainer"}
    for name, port in (("orchestrator", 50051), ("trainer", 50052)):
        service = services[name]
        assert service["build"]["dockerfile"] == f"services/{name}/Dockerfile"
        assert service["healthcheck"]["test"][:3] == ["CMD", "trainwire", "health"]
        assert f"127.0.0.1:{port}" in service["healthcheck"]["test"]
        assert any("--metrics-listen" in arg for arg in service["command"])
    trainer = services["trainer"]
    assert "--orchestrator=orchestrator:50051" in trainer["command"]  # self-registration
    assert "--advertise=trainer:50052" in trainer["command"]
    volumes = _targets(trainer["volumes"])
    assert {"/data", "/var/lib/trainwire/work"} <= volumes
    orchestrator_volumes = _targets(services["orchestrator"]["volumes"])
    assert "/var/lib/trainwire" in orchestrator_volumes
    assert set(config["volumes"]) >= {"models", "trainer-work"}


def test_both_services_get_the_token_from_the_environment() -> None:
    services = _compose_config()["services"]
    for name in ("orchestrator", "trainer"):
        assert services[name]["environment"]["TRAINWIRE_TOKEN"] == TOKEN, name
        command = " ".join(services[name]["command"])
        assert "--token" not in command and "--insecure" not in command, command
    assert "--listen=0.0.0.0:50052" in services["trainer"]["command"]


def test_compose_refuses_to_start_without_a_token() -> None:
    done = _run_compose_config(None)
    assert done.returncode != 0
    assert "TRAINWIRE_TOKEN" in done.stderr, done.stderr


@pytest.mark.parametrize("service", ["orchestrator", "trainer"])
def test_dockerfiles_are_slim_and_non_root(service: str) -> None:
    text = (ROOT / "services" / service / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert "download.pytorch.org/whl/cpu" in text  # the CPU torch build, not the CUDA one
    assert re.search(r"^HEALTHCHECK .*", text, re.M)
    for copied in re.findall(r"^COPY (\S+)", text, re.M):
        if copied != "--from":
            assert (ROOT / copied.split()[0]).exists(), f"COPY {copied}: no such path"
