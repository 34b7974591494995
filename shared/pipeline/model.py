"""The MLP a strategy trains: Linear → activation → dropout per hidden layer, then Linear.

Determinism without global state: weights are initialised from a ``torch.Generator`` and dropout
draws its masks from a generator the trainer attaches, so two jobs training at once in one
process (threads) cannot disturb each other's random streams. The state-dict keys are those of an
``nn.Sequential`` (``0.weight``, ``0.bias``, ``3.weight``, ...), and a model rebuilt from the
artifact's architecture loads them strictly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from shared.spec import ModelSpec

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
    "sigmoid": nn.Sigmoid,
}


class SeededDropout(nn.Module):
    """Inverted dropout whose masks come from ``generator`` (global RNG when None)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError("dropout must be in [0, 1)")
        self.p = p
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty_like(x).bernoulli_(1.0 - self.p, generator=self.generator)
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def build_model(
    input_dim: int, n_classes: int, spec: ModelSpec, *, generator: torch.Generator | None = None
) -> nn.Sequential:
    """The MLP for ``spec``, on the CPU, initialised from ``generator`` (PyTorch's defaults)."""
    if input_dim < 1 or n_classes < 2:
        raise ValueError("an MLP needs input_dim >= 1 and n_classes >= 2")
    if spec.activation not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {spec.activation!r}")
    layers: list[nn.Module] = []
    width = input_dim
    for hidden in spec.hidden_layers:
        layers += [
            nn.Linear(width, hidden),
            _ACTIVATIONS[spec.activation](),
            SeededDropout(spec.dropout),
        ]
        width = hidden
    layers.append(nn.Linear(width, n_classes))
    model = nn.Sequential(*layers)
    if generator is not None:
        init_weights(model, generator)
    return model


def init_weights(model: nn.Module, generator: torch.Generator) -> None:
    """``nn.Linear``'s default initialisation, drawn from ``generator``."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear):
                fan_in = module.in_features
                bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                # kaiming_uniform_(a=sqrt(5)) reduces to U(-1/sqrt(fan_in), 1/sqrt(fan_in))
                module.weight.uniform_(-bound, bound, generator=generator)
                if module.bias is not None:
                    module.bias.uniform_(-bound, bound, generator=generator)


def attach_generator(model: nn.Module, generator: torch.Generator | None) -> None:
    """Make every dropout layer of ``model`` draw from ``generator``."""
    for module in model.modules():
        if isinstance(module, SeededDropout):
            module.generator = generator


def architecture(input_dim: int, n_classes: int, spec: ModelSpec) -> dict[str, Any]:
    """What the artifact records to rebuild the model."""
    return {
        "type": "mlp",
        "input_dim": input_dim,
        "n_classes": n_classes,
        "hidden_layers": list(spec.hidden_layers),
        "activation": spec.activation,
        "dropout": spec.dropout,
    }


def model_from_architecture(arch: Mapping[str, Any]) -> tuple[nn.Sequential, int, int]:
    """Rebuild an (uninitialised) model from ``architecture(...)``'s dict."""
    if arch.get("type", "mlp") != "mlp":
        raise ValueError(f"unsupported model type {arch.get('type')!r}")
    spec = ModelSpec(
        hidden_layers=tuple(int(w) for w in arch["hidden_layers"]),
        activation=str(arch["activation"]),
        dropout=float(arch["dropout"]),
    )
    input_dim, n_classes = int(arch["input_dim"]), int(arch["n_classes"])
    return build_model(input_dim, n_classes, spec), input_dim, n_classes


ACTIVATION_DEFINITIONS: dict[str, str] = {
    "relu": "max(0, x)",
    "tanh": "tanh(x)",
    "gelu": "0.5 * x * (1 + erf(x / sqrt(2))) (exact, not the tanh approximation)",
    "leaky_relu": "x where x >= 0, else 0.01 * x",
    "sigmoid": "1 / (1 + exp(-x))",
}
"""Each activation as a formula, for the artifact."""


def layer_layout(arch: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The Linear layers of ``architecture(...)``'s model in order: their tensor names in the
    artifact (``{index}.weight`` of shape [out, in], ``{index}.bias`` of shape [out]), sizes and
    the activation applied after each (none after the last: it gives the class logits)."""
    widths = [int(arch["input_dim"]), *(int(w) for w in arch["hidden_layers"])]
    widths.append(int(arch["n_classes"]))
    layers: list[dict[str, Any]] = []
    for i in range(len(widths) - 1):
        index = 3 * i  # Linear, activation, dropout per hidden layer
        last = i == len(widths) - 2
        layers.append(
            {
                "weight": f"{index}.weight",
                "bias": f"{index}.bias",
                "in": widths[i],
                "out": widths[i + 1],
                "activation": None if last else str(arch["activation"]),
            }
        )
    return layers
