"""KTRDR v3 strategy YAML: the shipped examples train-validate, and bad files say what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.pipeline import validate_request
from shared.pipeline.features import resolve_features
from shared.spec import LabelMethod, SpecError, TrainingRequest
from shared.strategy_yaml import parse_strategy_yaml

STRATEGIES = sorted((Path(__file__).resolve().parents[2] / "strategies").glob("*.yaml"))

FULL = """
name: demo
version: "3.0"
training_data:
  symbols: {mode: multi_symbol, list: [AAA, BBB]}
  timeframes: {mode: multi_timeframe, list: [4h, 1h], base_timeframe: 1h}
indicators:
  rsi_14: {type: rsi, period: 14}
  macd: {type: macd, fast_period: 8, slow_period: 21, signal_period: 5}
fuzzy_sets:
  rsi_fast:
    indicator: rsi_14
    oversold: [0, 25, 35]
    overbought: {type: trapezoid, parameters: [65, 75, 100, 100]}
  rsi_slow:
    indicator: rsi_14
    extreme: {type: gaussian, parameters: [10, 5]}
  trend:
    indicator: macd.histogram
    up: [0, 1, 2]
nn_inputs:
  - {fuzzy_set: trend, timeframes: [4h]}
  - {fuzzy_set: rsi_fast, timeframes: all}
model:
  type: mlp
  architecture: {hidden_layers: [16, 8], activation: tanh, dropout: 0.0, output_activation: softmax}
  training: {epochs: 99, batch_size: 16, optimizer: adam}
decisions: {output_format: classification}
training:
  method: supervised
  labels: {source: forward_return, threshold: 0.01, lookahead: 6}
  epochs: 3
  early_stopping: {enabled: true, patience: 2, min_delta: 0.001}
  data_split: {train: 0.6, validation: 0.25, test: 0.15}
  seed: 5
"""


@pytest.mark.parametrize("path", STRATEGIES, ids=lambda p: p.stem)
def test_shipped_strategies_are_valid_requests(path: Path) -> None:
    parsed = parse_strategy_yaml(path.read_text())
    assert parsed.symbols and parsed.timeframes
    request = TrainingRequest(
        symbols=parsed.symbols, timeframes=parsed.timeframes, strategy=parsed.strategy
    )
    validate_request(request)
    assert resolve_features(parsed.strategy, parsed.timeframes)


def test_three_example_strategies_ship() -> None:
    assert len(STRATEGIES) >= 3


def test_full_translation() -> None:
    parsed = parse_strategy_yaml(FULL)
    s = parsed.strategy
    assert parsed.symbols == ("AAA", "BBB")
    assert parsed.timeframes == ("1h", "4h")  # base timeframe first
    assert [(i.id, i.type, dict(i.params)) for i in s.indicators] == [
        ("rsi_14", "rsi", {"period": 14.0}),
        ("macd", "macd", {"fast_period": 8.0, "slow_period": 21.0, "signal_period": 5.0}),
    ]
    over = s.fuzzy_sets[1]
    assert (over.set_id, over.input, over.name, over.shape) == (
        "rsi_fast",
        "rsi_14",
        "overbought",
        "trapezoidal",
    )
    assert over.params == (65, 75, 100, 100)
    assert s.fuzzy_sets[0].shape == "triangular"
    assert s.fuzzy_sets[2].shape == "gaussian"
    assert [(n.fuzzy_set, n.timeframes) for n in s.nn_inputs] == [
        ("trend", ("4h",)),
        ("rsi_fast", ()),
    ]
    assert s.model.hidden_layers == (16, 8) and s.model.activation == "tanh"
    assert s.model.dropout == 0.0
    t = s.training
    # `training` wins over `model.training`; model.training fills what training lacks.
    assert (t.epochs, t.batch_size, t.early_stopping_patience, t.seed) == (3, 16, 2, 5)
    assert (t.validation_split, t.test_split) == (0.25, 0.15)
    assert s.labels.method is LabelMethod.FORWARD_RETURN
    assert (s.labels.threshold, s.labels.lookahead) == (0.01, 6)


def test_nn_inputs_fix_the_feature_order() -> None:
    parsed = parse_strategy_yaml(FULL)
    names = [f.column for f in resolve_features(parsed.strategy, parsed.timeframes)]
    assert names == [
        "trend:up@4h",
        "rsi_fast:oversold@1h",
        "rsi_fast:overbought@1h",
        "rsi_fast:oversold@4h",
        "rsi_fast:overbought@4h",
    ]


def test_without_nn_inputs_every_set_on_every_timeframe() -> None:
    text = FULL.split("nn_inputs:")[0] + "model: {}\n"
    parsed = parse_strategy_yaml(text)
    features = resolve_features(parsed.strategy, parsed.timeframes)
    assert len(features) == 4 * 2
    assert features[0].column == "rsi_fast:oversold@1h"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("name: x\nindicators: {a: [\n", "line 3"),
        ("- just\n- a list\n", "must be a mapping"),
        ("name: x\nversion: '2.0'\nindicators: {}\nfuzzy_sets: {}\n", "only v3"),
        ("indicators: {}\nfuzzy_sets: {}\n", "name"),
        ("name: x\nfuzzy_sets: {}\n", "indicators: required"),
        ("name: x\nindicators: {r: {period: 3}}\nfuzzy_sets: {}\n", "indicators.r.type"),
        ("name: x\nindicators: {r: {type: rsi, period: '14'}}\nfuzzy_sets: {}\n", "period"),
        ("name: x\nindicators: {r: {type: rsi}}\nfuzzy_sets: {z: {low: [1, 2, 3]}}\n", "indicator"),
        ("name: x\nindicators: {r: {type: rsi}}\nfuzzy_sets: {z: {indicator: r}}\n", "membership"),
        (
            "name: x\nindicators: {r: {type: rsi}}\n"
            "fuzzy_sets: {z: {indicator: r, lo: {type: sigmoid, parameters: [1, 2]}}}\n",
            "sigmoid",
        ),
        (
            "name: x\nindicators: {r: {type: rsi}}\n"
            "fuzzy_sets: {z: {indicator: r, lo: [0, 1, 2]}}\nmodel: {type: lstm}\n",
            "mlp",
        ),
        (
            "name: x\nindicators: {r: {type: rsi}}\n"
            "fuzzy_sets: {z: {indicator: r, lo: [0, 1, 2]}}\ntraining: {epochz: 3}\n",
            "training.epochz",
        ),
        (
            "name: x\nindicators: {r: {type: rsi}}\n"
            "fuzzy_sets: {z: {indicator: r, lo: [0, 1, 2]}}\ntraining: {epochs: 2.5}\n",
            "integer",
        ),
        (
            "name: x\nindicators: {r: {type: rsi}}\n"
            "fuzzy_sets: {z: {indicator: r, lo: [0, 1, 2]}}\n"
            "training: {labels: {source: triple_barrier}}\n",
            "triple_barrier",
        ),
        (
            "name: x\nindicators: {r: {type: rsi}}\n"
            "fuzzy_sets: {z: {indicator: r, lo: [0, 1, 2]}}\n"
            "training_data: {timeframes: {list: [1h], base_timeframe: 5m}}\n",
            "base_timeframe",
        ),
        ("name: x\n" + "#" * 300_000, "KiB"),
    ],
)
def test_bad_yaml_is_a_spec_error_naming_the_path(text: str, needle: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_strategy_yaml(text)
    assert err.value.field == "strategy_yaml"
    assert needle in err.value.message


def test_semantic_errors_are_caught_by_validation() -> None:
    text = (
        "name: x\nindicators: {r: {type: rsi}}\n"
        "fuzzy_sets: {z: {indicator: r, lo: [3, 2, 1]}}\n"
        "nn_inputs: [{fuzzy_set: z, timeframes: [4h]}]\n"
    )
    parsed = parse_strategy_yaml(text)
    request = TrainingRequest(symbols=("SYNTH",), timeframes=("1h",), strategy=parsed.strategy)
    with pytest.raises(SpecError) as err:
        validate_request(request)
    assert err.value.field == "strategy.fuzzy_sets[0].params"
    fixed = text.replace("[3, 2, 1]", "[1, 2, 3]")
    request = TrainingRequest(
        symbols=("SYNTH",), timeframes=("1h",), strategy=parse_strategy_yaml(fixed).strategy
    )
    with pytest.raises(SpecError) as err:
        validate_request(request)
    assert err.value.field == "strategy.nn_inputs[0].timeframes[0]"
    assert "4h" in err.value.message
