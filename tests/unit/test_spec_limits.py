"""Request validation: whole-string rules, string and number caps, and job-size limits."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch

from shared.pipeline import validate_request
from shared.pipeline.features import resolve_features
from shared.pipeline.labels import CLASSES
from shared.pipeline.model import build_model
from shared.spec import (
    DEFAULT_LIMITS,
    DataSource,
    DataSpec,
    FuzzySetSpec,
    IndicatorSpec,
    JobLimits,
    JobSize,
    LabelSpec,
    ModelSpec,
    NNInputSpec,
    PlacementSpec,
    SpecError,
    StrategySpec,
    TrainingRequest,
    TrainingSpec,
    check_limits,
    default_strategy,
    estimate,
)


def _request(**fields: Any) -> TrainingRequest:
    base: dict[str, Any] = {
        "symbols": ("SYNTH",),
        "timeframes": ("1h",),
        "strategy": default_strategy(),
    }
    return TrainingRequest(**{**base, **fields})


def _strategy(**fields: Any) -> StrategySpec:
    return dataclasses.replace(default_strategy(), **fields)


def _refused(request: TrainingRequest, limits: JobLimits | None = DEFAULT_LIMITS) -> SpecError:
    with pytest.raises(SpecError) as info:
        validate_request(request, limits=limits)
    return info.value


# -- whole strings: a trailing newline is not a valid symbol, timeframe or name -------------------


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (_request(symbols=("SYNTH\n",)), "symbols[0]"),
        (_request(symbols=("SYNTH", "ALPHA\n")), "symbols[1]"),
        (_request(timeframes=("1h\n",)), "timeframes[0]"),
        (_request(strategy=_strategy(name="name\n")), "strategy.name"),
        (
            _request(
                strategy=_strategy(
                    indicators=(
                        IndicatorSpec(id="rsi_14\n", type="rsi"),
                        *default_strategy().indicators[1:],
                    )
                )
            ),
            "strategy.indicators[0].id",
        ),
        (
            _request(
                strategy=_strategy(
                    fuzzy_sets=(
                        dataclasses.replace(default_strategy().fuzzy_sets[0], name="low\n"),
                        *default_strategy().fuzzy_sets[1:],
                    )
                )
            ),
            "strategy.fuzzy_sets[0].name",
        ),
        (
            _request(
                strategy=_strategy(
                    fuzzy_sets=(
                        dataclasses.replace(default_strategy().fuzzy_sets[0], set_id="rsi\n"),
                        *default_strategy().fuzzy_sets[1:],
                    )
                )
            ),
            "strategy.fuzzy_sets[0].set_id",
        ),
        (_request(placement=PlacementSpec(device="cpu\n")), "placement.device"),
        (_request(placement=PlacementSpec(device="cuda:1\n")), "placement.device"),
    ],
)
def test_a_trailing_newline_is_refused_naming_the_field(
    request_: TrainingRequest, field: str
) -> None:
    assert _refused(request_).field == field


def test_non_ascii_lookalikes_are_refused() -> None:
    # A Cyrillic 'А' and fullwidth digits look like ASCII in a terminal.
    assert _refused(_request(symbols=("\u0410APL",))).field == "symbols[0]"
    assert _refused(_request(timeframes=("\uff11h",))).field == "timeframes[0]"


# -- string caps ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "field", "needle"),
    [
        (_request(request_id="r" * 129), "request_id", "128"),
        (_request(request_id="r" * 1_000_000), "request_id", "128"),
        (_request(request_id="has space"), "request_id", "printable ASCII"),
        (_request(request_id="line\nbreak"), "request_id", "printable ASCII"),
        (_request(request_id="caf\u00e9"), "request_id", "printable ASCII"),
        (
            _request(data=DataSpec(source=DataSource.DIRECTORY, path="a" * 257)),
            "data.path",
            "256",
        ),
        (
            _request(data=DataSpec(source=DataSource.DIRECTORY, path="market\x00x")),
            "data.path",
            "control",
        ),
        (_request(data=DataSpec(start="2024-01-01" + " " * 100)), "data.start", "ISO-8601"),
        (_request(data=DataSpec(end="2024-01-01\n")), "data.end", "ISO-8601"),
        (_request(data=DataSpec(start="now")), "data.start", "ISO-8601"),
        (_request(placement=PlacementSpec(node="h" * 1_000_000 + ":1")), "placement.node", ""),
        (_request(placement=PlacementSpec(node="unix:/tmp/sock")), "placement.node", ""),
        (_request(placement=PlacementSpec(node="gpu box:50052")), "placement.node", ""),
        (
            _request(
                strategy=_strategy(
                    indicators=(
                        IndicatorSpec(id="rsi_14", type="rsi", params={"p" * 100_000: 14.0}),
                        *default_strategy().indicators[1:],
                    )
                )
            ),
            "strategy.indicators[0].params",
            "parameter name",
        ),
        (
            _request(
                strategy=_strategy(
                    indicators=(
                        IndicatorSpec(
                            id="rsi_14", type="rsi", params={f"k{i}": 1.0 for i in range(100)}
                        ),
                        *default_strategy().indicators[1:],
                    )
                )
            ),
            "strategy.indicators[0].params",
            "at most",
        ),
        (
            _request(
                strategy=_strategy(
                    indicators=tuple(
                        IndicatorSpec(id=f"sma_{i}", type="sma") for i in range(1, 1000)
                    )
                )
            ),
            "strategy.indicators",
            "at most",
        ),
        (
            _request(strategy=_strategy(model=ModelSpec(hidden_layers=(4,) * 1000))),
            "strategy.model.hidden_layers",
            "at most",
        ),
    ],
)
def test_oversized_strings_and_lists_are_refused(
    request_: TrainingRequest, field: str, needle: str
) -> None:
    error = _refused(request_)
    assert error.field == field
    assert needle in error.message
    assert len(error.message) < 600, "a huge value must not be echoed in full"


def test_a_node_is_named_by_address_or_by_id() -> None:
    for node in ("gpu-box:50052", "10.0.0.7:50052", "[::1]:50052", "beta", "gpu-box"):
        validate_request(_request(placement=PlacementSpec(node=node)))
    assert _refused(_request(placement=PlacementSpec(node="beta\n"))).field == "placement.node"


def test_well_formed_strings_pass() -> None:
    validate_request(
        _request(
            request_id="2f1c9a40-0b4e-4c11-9d0a-5e2b7c3d8e11",
            placement=PlacementSpec(node="gpu-box:50052", device="cuda:1"),
            data=DataSpec(start="2020-01-02", end="2020-02-01T12:30:00Z"),
        )
    )


# -- numbers: every value fits its wire type and its domain ---------------------------------------


def _training(**fields: Any) -> TrainingRequest:
    return _request(strategy=_strategy(training=TrainingSpec(**fields)))


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (_training(seed=100_000_000_000_000_000_000), "strategy.training.seed"),
        (_training(seed=2**63), "strategy.training.seed"),
        (
            _training(early_stopping_patience=1_000_000_000_000),
            "strategy.training.early_stopping_patience",
        ),
        (_training(epochs=2**40), "strategy.training.epochs"),
        (_request(data=DataSpec(seed=-1)), "data.seed"),
        (_request(data=DataSpec(seed=2**64)), "data.seed"),
        (
            _request(strategy=_strategy(labels=LabelSpec(lookahead=2**40))),
            "strategy.labels.lookahead",
        ),
        (
            _request(strategy=_strategy(labels=LabelSpec(threshold=10**400))),
            "strategy.labels.threshold",
        ),
        (_request(strategy=_strategy(model=ModelSpec(dropout=10**400))), "strategy.model.dropout"),
        (
            _request(strategy=_strategy(model=ModelSpec(hidden_layers=(2**40,)))),
            "strategy.model.hidden_layers[0]",
        ),
        (_training(epochs=True), "strategy.training.epochs"),
        (_training(learning_rate="0.1"), "strategy.training.learning_rate"),
    ],
)
def test_out_of_range_numbers_are_refused_naming_the_field(
    request_: TrainingRequest, field: str
) -> None:
    assert _refused(request_).field == field


def test_the_largest_values_in_range_pass() -> None:
    validate_request(
        _request(
            strategy=_strategy(
                training=TrainingSpec(seed=2**63 - 1, early_stopping_patience=100_000)
            ),
            data=DataSpec(seed=2**63 - 1),
        )
    )


# -- the synthetic market's calendar --------------------------------------------------------------


def test_a_synthetic_market_past_the_last_representable_date_is_refused() -> None:
    # 600 bars of 1000 days run to the year 3662: the trainer cannot index those bars.
    error = _refused(_request(timeframes=("1000d", "2000d"), data=DataSpec(bars=600)))
    assert error.field == "data.bars"
    assert "2262" in error.message


def test_a_window_outside_the_synthetic_market_is_refused() -> None:
    # 3000 hourly bars from 2020-01-01 end in May 2020.
    late = _refused(_request(data=DataSpec(start="2021-01-01")))
    assert late.field == "data.start"
    assert "2020-01-01" in late.message and "data.bars" in late.message
    early = _refused(_request(data=DataSpec(end="2019-06-30")))
    assert early.field == "data.end"
    assert "2020-01-01" in early.message
    validate_request(_request(data=DataSpec(start="2020-02-01", end="2020-03-01")))


# -- job size -------------------------------------------------------------------------------------


def test_the_estimate_matches_the_model_the_trainer_builds() -> None:
    strategy = _strategy(
        nn_inputs=(
            NNInputSpec(fuzzy_set="rsi_14", timeframes=("4h",)),
            NNInputSpec(fuzzy_set="atr_14.relative"),
        ),
        model=ModelSpec(hidden_layers=(7, 5)),
    )
    request = _request(symbols=("A", "B", "C"), timeframes=("1h", "4h"), strategy=strategy)
    size = estimate(request)
    features = len(resolve_features(strategy, request.timeframes))
    model = build_model(features, len(CLASSES), strategy.model, generator=torch.Generator())
    assert size == JobSize(
        features=features,
        parameters=sum(p.numel() for p in model.parameters()),
        bars=3000 * 3 * 2,
    )
    assert estimate(_request()).features == len(default_strategy().fuzzy_sets)


def test_a_directory_job_has_no_bar_estimate_at_submit() -> None:
    request = _request(data=DataSpec(source=DataSource.DIRECTORY, path="market"))
    assert estimate(request).bars is None
    check_limits(request, JobLimits(max_bars=1))  # the trainer's loader enforces it


def test_a_17_gib_model_is_refused_naming_the_limit_and_the_estimate() -> None:
    request = _request(strategy=_strategy(model=ModelSpec(hidden_layers=(65_536, 65_536))))
    error = _refused(request)
    assert error.field == "strategy.model.hidden_layers"
    parameters = estimate(request).parameters
    assert parameters > 4_000_000_000
    assert f"{parameters:,}" in error.message  # the estimate
    assert "50,000,000" in error.message  # the limit
    assert "GiB" in error.message and "hidden_layers" in error.message


def test_50m_bars_times_64_symbols_is_refused() -> None:
    symbols = tuple(f"S{i}" for i in range(64))
    request = _request(symbols=symbols, timeframes=("1m",), data=DataSpec(bars=50_000_000))
    error = _refused(request)
    assert error.field == "data.bars"
    assert "3,200,000,000" in error.message and "20,000,000" in error.message
    assert "64 symbols" in error.message


def test_limits_are_configurable_and_can_be_switched_off() -> None:
    request = _request(symbols=("A", "B"), data=DataSpec(bars=10_000))
    assert _refused(request, JobLimits(max_bars=19_999)).field == "data.bars"
    validate_request(request, limits=JobLimits(max_bars=20_000))
    small = JobLimits(max_parameters=100)
    assert _refused(_request(), small).field == "strategy.model.hidden_layers"
    big = _request(strategy=_strategy(model=ModelSpec(hidden_layers=(65_536, 65_536))))
    validate_request(big, limits=None)
    with pytest.raises(ValueError):
        JobLimits(max_parameters=0)


def test_the_default_request_is_well_inside_the_default_limits() -> None:
    size = estimate(_request())
    assert size.parameters < JobLimits().max_parameters
    assert size.bars is not None and size.bars < JobLimits().max_bars


def test_fuzzy_set_members_count_once_per_timeframe() -> None:
    sets = (
        FuzzySetSpec(input="rsi_14", name="a", shape="gaussian", params=(0, 1), set_id="s"),
        FuzzySetSpec(input="rsi_14", name="b", shape="gaussian", params=(1, 1), set_id="s"),
    )
    strategy = _strategy(fuzzy_sets=sets, model=ModelSpec(hidden_layers=(4,)))
    size = estimate(_request(timeframes=("1h", "4h", "1d"), strategy=strategy))
    assert size.features == 6
    assert size.parameters == (6 + 1) * 4 + (4 + 1) * 3
