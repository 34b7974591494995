"""Device selection with patched accelerator availability."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from shared.device import available_devices, select_device


def _patch(monkeypatch: pytest.MonkeyPatch, *, cuda: int = 0, mps: bool = False) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: f"Fake GPU {i}")
    monkeypatch.setattr(
        torch.cuda, "get_device_properties", lambda i=0: SimpleNamespace(total_memory=80 << 30)
    )
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


def test_cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    _patch(monkeypatch)
    info = select_device()
    assert (info.kind, info.torch_device, info.supports_amp) == ("cpu", "cpu", False)
    assert info.name
    assert info.as_torch() == torch.device("cpu")


def test_cuda_preferred_over_mps(monkeypatch: pytest.MonkeyPatch) -> None:
    _patch(monkeypatch, cuda=2, mps=True)
    info = select_device("")
    assert (info.kind, info.torch_device, info.name) == ("cuda", "cuda:0", "Fake GPU 0")
    assert info.memory_bytes == 80 << 30 and info.supports_amp
    assert [d.torch_device for d in available_devices()] == ["cuda:0", "cuda:1", "mps", "cpu"]


def test_mps_when_no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    _patch(monkeypatch, mps=True)
    assert select_device().kind == "mps"
    assert select_device("gpu").torch_device == "mps"


def test_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    _patch(monkeypatch, cuda=2)
    assert select_device("cpu").kind == "cpu"
    assert select_device("CUDA").torch_device == "cuda:0"
    assert select_device("cuda:1").name == "Fake GPU 1"
    assert select_device("auto").torch_device == "cuda:0"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("cuda", "has 0 CUDA device"),
        ("cuda:3", "has 0 CUDA device"),
        ("mps", "no MPS"),
        ("gpu", "no CUDA or MPS"),
        ("tpu", "unknown device override"),
        ("cuda:x", "not valid"),
    ],
)
def test_unavailable_override_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, override: str, message: str
) -> None:
    _patch(monkeypatch)
    with pytest.raises(ValueError, match=message):
        select_device(override)


def test_detection_failure_falls_back_to_cpu(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> bool:
        raise RuntimeError("driver exploded")

    _patch(monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", broken)
    monkeypatch.setattr(torch.backends.mps, "is_available", broken)
    with caplog.at_level("WARNING"):
        assert select_device().kind == "cpu"
    assert "driver exploded" in caplog.text
