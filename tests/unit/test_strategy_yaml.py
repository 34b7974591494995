"""KTRDR v3 strategy YAML: the shipped examples train-validate, and bad files say what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shared.pipeline import validate_request
from shared.pipeline.features import resolve_features
from shared.rpc import serde
from shared.rpc.v1 import strategy_pb2 as spb
from shared.spec import DataSpec, LabelMethod, LabelSpec, SpecError, TrainingRequest
from shared.strategy_yaml import parse_strategy_yaml

STRATEGIES = sorted(
    path
    for path in (Path(__file__).resolve().parents[2] / "strategies").glob("*.yaml")
    if "space" not in (yaml.safe_load(path.read_text()) or {})  # optimization specs
)

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


# -- nothing in a file is silently dropped or silently means something else ----------------------

BASE = "name: x\nindicators: {r: {type: rsi}}\nfuzzy_sets: {z: {indicator: r, lo: [0, 1, 2]}}\n"


def _yaml_error(text: str) -> str:
    with pytest.raises(SpecError) as err:
        parse_strategy_yaml(text)
    assert err.value.field == "strategy_yaml"
    return err.value.message


@pytest.mark.parametrize(
    ("text", "path"),
    [
        (BASE + "training:\n  epochs: 1\n  epochs: 99999\n", "training.epochs: duplicate key"),
        (BASE + "training: {epochs: 1, 'epochs': 2}\n", "training.epochs: duplicate key"),
        (BASE + "training: {epochs: 1}\ntraining: {epochs: 2}\n", "training: duplicate key"),
        (BASE + "name: y\n", "name: duplicate key"),
        (
            BASE + "nn_inputs:\n  - {fuzzy_set: z, fuzzy_set: q}\n",
            "nn_inputs[0].fuzzy_set: duplicate key",
        ),
        (
            "name: x\nindicators:\n  r: {type: rsi, period: 14, period: 3}\nfuzzy_sets: {}\n",
            "indicators.r.period: duplicate key",
        ),
    ],
)
def test_a_duplicate_key_is_an_error_naming_its_path(text: str, path: str) -> None:
    message = _yaml_error(text)
    assert message.startswith(path), message
    assert "line" in message


def test_a_duplicate_key_names_both_lines() -> None:
    message = _yaml_error(BASE + "training:\n  epochs: 1\n  batch_size: 8\n  epochs: 99999\n")
    assert "line 7" in message and "first given at line 5" in message


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (BASE + "training: {learning_rate: 1" + "0" * 400 + "}\n", "training.learning_rate"),
        (BASE + "training: {seed: " + "9" * 5000 + "}\n", "line 4"),
        (BASE + "training_data: {start: 0000-01-01}\n", "line 4"),
        (BASE + "training: {epochs: '3'}\n", "training.epochs: must be an integer"),
        (BASE + "training: {epochs: true}\n", "training.epochs: must be an integer"),
        (BASE + "model: {dropout: yes}\n", "model.architecture.dropout: must be a number"),
        (BASE + "model: {activation: [relu]}\n", "model.architecture.activation"),
        (BASE + "training: {labels: {threshold: .nan}}\n", "training.labels.threshold"),
    ],
)
def test_unreadable_numbers_are_errors_naming_the_path(text: str, needle: str) -> None:
    message = _yaml_error(text)
    assert needle in message, message
    assert len(message) < 400


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ("training: {seed: 100000000000000000000}\n", "strategy.training.seed"),
        (
            "training: {early_stopping_patience: 1000000000000}\n",
            "strategy.training.early_stopping_patience",
        ),
        ("training: {epochs: 4294967297}\n", "strategy.training.epochs"),
        ("training: {batch_size: -9223372036854775809}\n", "strategy.training.batch_size"),
        ("labels: {lookahead: 99999999999}\n", "strategy.labels.lookahead"),
        ("model: {hidden_layers: [4294967296]}\n", "strategy.model.hidden_layers[0]"),
    ],
)
def test_integers_beyond_their_wire_type_are_refused_by_validation(extra: str, field: str) -> None:
    parsed = parse_strategy_yaml(BASE + extra)
    request = TrainingRequest(symbols=("SYNTH",), timeframes=("1h",), strategy=parsed.strategy)
    with pytest.raises(SpecError) as err:
        validate_request(request)
    assert err.value.field == field


@pytest.mark.parametrize(
    ("extra", "path"),
    [
        (
            "training: {labels: {threshold: 0.02, zigzag_threshold: 0.05}}\n",
            "training.labels.zigzag_threshold",
        ),
        ("training: {labels: {source: zigzag, method: zigzag}}\n", "training.labels.method"),
        (
            "training: {labels: {lookahead: 5, label_lookahead: 9}}\n",
            "training.labels.label_lookahead",
        ),
        (
            "training: {early_stopping_patience: 3, early_stopping: {patience: 9}}\n",
            "training.early_stopping",
        ),
        (
            "training: {validation_split: 0.1, data_split: {validation: 0.3, test: 0.1}}\n",
            "training.data_split.validation",
        ),
        (
            "model: {hidden_layers: [4], architecture: {hidden_layers: [8]}}\n",
            "model.hidden_layers",
        ),
        (
            "training_data: {symbols: {symbol: A, list: [B, C]}}\n",
            "training_data.symbols.symbol",
        ),
        ("training_data: {timeframes: {list: [1h], timeframe: 4h}}\n", "training_data.timeframes"),
    ],
)
def test_one_setting_given_twice_is_an_error(extra: str, path: str) -> None:
    message = _yaml_error(BASE + extra)
    assert message.startswith(path), message
    assert "only one" in message


@pytest.mark.parametrize(
    ("extra", "path"),
    [
        ("training_data: {symbols: {lst: [A, B]}}\n", "training_data.symbols.lst"),
        ("training_data: {timeframes: {tf: 1h}}\n", "training_data.timeframes.tf"),
        ("training_data: {start_date: 2024-01-01}\n", "training_data.start_date"),
        ("training: {method: reinforcement}\n", "training.method"),
        (
            "training: {data_split: {train: 0.7, validation: 0.2, test: 0.2}}\n",
            "training.data_split",
        ),
        ("training: {early_stopping: {enabled: 'no'}}\n", "training.early_stopping.enabled"),
        ("training_data: {timeframes: {timeframe: 1h, base_timeframe: 4h}}\n", "base_timeframe"),
    ],
)
def test_keys_that_would_be_dropped_are_errors(extra: str, path: str) -> None:
    assert path in _yaml_error(BASE + extra)


def test_training_data_start_and_end_are_applied() -> None:
    text = BASE + "training_data:\n  start: 2020-01-02\n  end: '2020-02-01T12:00:00Z'\n"
    parsed = parse_strategy_yaml(text)
    assert (parsed.start, parsed.end) == ("2020-01-02", "2020-02-01T12:00:00Z")
    message = spb.TrainRequest(symbols=["SYNTH"], timeframes=["1h"], strategy_yaml=text)
    request = serde.request_from_proto(message)
    assert (request.data.start, request.data.end) == ("2020-01-02", "2020-02-01T12:00:00Z")
    validate_request(request)
    # The request's own fields win over the file's.
    message.data.start = "2020-01-10"
    assert serde.request_from_proto(message).data.start == "2020-01-10"
    assert serde.request_from_proto(message).data.end == "2020-02-01T12:00:00Z"


def test_a_yaml_timestamp_keeps_its_zone() -> None:
    parsed = parse_strategy_yaml(BASE + "training_data: {start: 2020-01-02T10:00:00+02:00}\n")
    assert parsed.start == "2020-01-02T10:00:00+02:00"
    request = TrainingRequest(
        symbols=("SYNTH",),
        timeframes=("1h",),
        strategy=parsed.strategy,
        data=DataSpec(start=parsed.start),
    )
    validate_request(request)


@pytest.mark.parametrize(
    ("dates", "path"),
    [
        ("{start: yesterday}", "training_data.start"),
        ("{start: '2024-13-01'}", "training_data.start"),
        ("{end: 1492-10-12}", "training_data.end"),
        ("{start: 2024-02-01, end: 2024-01-01}", "training_data.end"),
        ("{start: 20240101}", "training_data.start"),
    ],
)
def test_bad_training_data_dates_name_the_path(dates: str, path: str) -> None:
    message = _yaml_error(BASE + f"training_data: {dates}\n")
    assert message.startswith(path), message


@pytest.mark.parametrize(
    "extra",
    [
        # Keys longer than 1024 characters must be explicit (``? key``) in YAML.
        "training_data:\n  start:\n    ? " + "A" * 200_000 + "\n    : null\n",
        "training:\n  ? " + "B" * 200_000 + "\n  : 1\n",
        "model: {type: " + "C" * 200_000 + "}\n",
        "version: '" + "9" * 200_000 + "'\n",
    ],
    ids=["huge-value", "huge-key", "huge-string", "huge-version"],
)
def test_a_huge_key_or_value_is_cut_in_the_message(extra: str) -> None:
    # Found by the fuzz test: the whole 200 KB value came back in the message.
    message = _yaml_error(BASE + extra)
    assert len(message) <= 1000
    assert "…" in message


# --- timeframes follow the request --------------------------------------------------------------


def _trained_on(text: str, *timeframes: str) -> TrainingRequest:
    message = spb.TrainRequest(symbols=["SYNTH"], timeframes=list(timeframes), strategy_yaml=text)
    return serde.request_from_proto(message)


def test_the_request_timeframes_replace_the_files_in_order() -> None:
    # FULL is written for [1h, 4h] (base 1h) with `trend` on 4h only.
    request = _trained_on(FULL, "1d", "1w")
    validate_request(request)
    assert [(n.fuzzy_set, n.timeframes) for n in request.strategy.nn_inputs] == [
        ("trend", ("1w",)),
        ("rsi_fast", ()),
    ]
    names = [f.column for f in resolve_features(request.strategy, request.timeframes)]
    assert names[0] == "trend:up@1w" and "rsi_fast:oversold@1d" in names
    # The file's own timeframes, or none given: the file as written.
    assert _trained_on(FULL).strategy.nn_inputs[0].timeframes == ("4h",)
    assert _trained_on(FULL, "1h", "4h").strategy == parse_strategy_yaml(FULL).strategy


def test_the_shipped_multi_timeframe_strategy_trains_on_days_and_weeks() -> None:
    path = next(p for p in STRATEGIES if p.stem == "trend_momentum_mtf")
    request = _trained_on(path.read_text(), "1d", "1w")
    validate_request(request)
    tfs = {tf for n in request.strategy.nn_inputs for tf in n.timeframes}
    assert tfs == {"1d", "1w"}


def test_an_input_on_a_timeframe_the_request_lacks_says_so() -> None:
    with pytest.raises(SpecError) as info:
        _trained_on(FULL, "1d")
    assert info.value.field == "strategy_yaml"
    assert "nn_inputs[0].timeframes[0]: 4h is timeframe 2" in info.value.message
    assert "[1h, 4h]" in info.value.message and "give at least 2 timeframes" in info.value.message


def test_a_timeframe_the_file_does_not_list_is_taken_as_it_is() -> None:
    text = FULL.replace(
        "{fuzzy_set: trend, timeframes: [4h]}", "{fuzzy_set: trend, timeframes: [1d]}"
    )
    request = _trained_on(text, "1h", "1d")
    assert request.strategy.nn_inputs[0].timeframes == ("1d",)
    validate_request(request)
    with pytest.raises(SpecError) as info:
        validate_request(_trained_on(text, "1h", "4h"))
    assert info.value.field == "strategy.nn_inputs[0].timeframes[0]"


def test_threshold_auto_calibrates() -> None:
    text = BASE + "training:\n  labels: {source: zigzag, zigzag_threshold: auto}\n"
    labels = parse_strategy_yaml(text).strategy.labels
    assert labels.auto_threshold and labels.threshold == LabelSpec().threshold
    assert not parse_strategy_yaml(BASE).strategy.labels.auto_threshold
    message = _yaml_error(BASE + "training:\n  labels: {threshold: big}\n")
    assert message.startswith("training.labels.threshold") and "or auto" in message


def test_default_early_stopping_is_on() -> None:
    assert parse_strategy_yaml(BASE).strategy.training.early_stopping_patience == 5
    off = BASE + "training:\n  early_stopping: {enabled: false}\n"
    assert parse_strategy_yaml(off).strategy.training.early_stopping_patience == 0
