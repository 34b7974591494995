"""The training request as plain, validated dataclasses.

Everything past the servicer edge works on these types; protobuf messages and KTRDR YAML are
translated into them (``shared.rpc.serde`` and ``shared.pipeline.strategy_yaml``). ``validate``
is the one place that decides whether a request can be trained, so every caller (the
orchestrator before it queues a job, the trainer before it starts one) rejects the same inputs
with the same field paths.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field


class SpecError(ValueError):
    """A request that cannot be trained; ``field`` is the proto-style path to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, kw_only=True)
class IndicatorSpec:
    """One indicator instance; ``id`` names it for fuzzy sets and features (e.g. ``rsi_14``)."""

    id: str
    type: str
    params: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class FuzzySetSpec:
    """One membership function over an indicator output.

    ``input`` is an indicator id (``rsi_14``) or one of its outputs (``macd_12_26_9.histogram``).
    ``shape`` is ``triangular`` (3 params a<=b<=c), ``trapezoidal`` (4 params a<=b<=c<=d) or
    ``gaussian`` (2 params: mean, sigma>0). ``set_id`` is the KTRDR v3 fuzzy set this membership
    belongs to (``rsi_momentum`` with members oversold/neutral/overbought); it defaults to
    ``input``. ``nn_inputs`` select features by it, and features are named ``{set}:{name}``.
    """

    input: str
    name: str
    shape: str
    params: tuple[float, ...]
    set_id: str = ""

    @property
    def group(self) -> str:
        """The fuzzy set this membership belongs to: ``set_id``, or the input by default."""
        return self.set_id or self.input


@dataclass(frozen=True, kw_only=True)
class NNInputSpec:
    """KTRDR v3 ``nn_inputs`` entry: a fuzzy set's memberships on some (default: all) timeframes."""

    fuzzy_set: str
    timeframes: tuple[str, ...] = ()


class LabelMethod(enum.Enum):
    ZIGZAG = "zigzag"
    FORWARD_RETURN = "forward_return"


@dataclass(frozen=True, kw_only=True)
class LabelSpec:
    """BUY/HOLD/SELL labels: a move of at least ``threshold`` (fraction) in ``lookahead`` bars."""

    method: LabelMethod = LabelMethod.ZIGZAG
    threshold: float = 0.02
    lookahead: int = 20


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    hidden_layers: tuple[int, ...] = (64, 32)
    activation: str = "relu"
    dropout: float = 0.2


@dataclass(frozen=True, kw_only=True)
class TrainingSpec:
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 1e-3
    early_stopping_patience: int = 0
    """Epochs without validation-loss improvement before stopping; 0 disables early stopping."""
    validation_split: float = 0.2
    test_split: float = 0.15
    seed: int = 42


@dataclass(frozen=True, kw_only=True)
class StrategySpec:
    name: str
    indicators: tuple[IndicatorSpec, ...]
    fuzzy_sets: tuple[FuzzySetSpec, ...]
    nn_inputs: tuple[NNInputSpec, ...] = ()
    """Which fuzzy sets feed the model, in order; empty = every set on every timeframe."""
    labels: LabelSpec = field(default_factory=LabelSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    training: TrainingSpec = field(default_factory=TrainingSpec)


class DataSource(enum.Enum):
    SYNTHETIC = "synthetic"
    DIRECTORY = "directory"


@dataclass(frozen=True, kw_only=True)
class DataSpec:
    """Where the OHLCV bars come from.

    ``SYNTHETIC`` generates ``bars`` base-timeframe bars per symbol from ``seed`` (deterministic);
    ``DIRECTORY`` reads ``{path}/{SYMBOL}_{timeframe}.csv|parquet`` under the trainer's data dir.
    ``start``/``end`` are optional ISO-8601 dates that bound the range.
    """

    source: DataSource = DataSource.SYNTHETIC
    seed: int = 7
    bars: int = 3000
    path: str = ""
    start: str = ""
    end: str = ""


class PlacementMode(enum.Enum):
    AUTO = "auto"
    CPU = "cpu"
    GPU = "gpu"


@dataclass(frozen=True, kw_only=True)
class PlacementSpec:
    mode: PlacementMode = PlacementMode.AUTO
    require_gpu: bool = False
    node: str = ""
    allow_fallback: bool = True
    device: str = ""
    """Device override on the trainer (``cpu``, ``cuda``, ``cuda:1``, ``mps``); empty = best."""


@dataclass(frozen=True, kw_only=True)
class TrainingRequest:
    symbols: tuple[str, ...]
    timeframes: tuple[str, ...]
    strategy: StrategySpec
    data: DataSpec = field(default_factory=DataSpec)
    placement: PlacementSpec = field(default_factory=PlacementSpec)
    request_id: str = ""


# ---------------------------------------------------------------------------------------------
# The built-in default strategy: what a request naming only symbols and timeframes trains.


def default_strategy() -> StrategySpec:
    return StrategySpec(
        name="default_fuzzy_mlp",
        indicators=(
            IndicatorSpec(id="rsi_14", type="rsi", params={"period": 14}),
            IndicatorSpec(
                id="macd_12_26_9", type="macd", params={"fast": 12, "slow": 26, "signal": 9}
            ),
            IndicatorSpec(id="sma_20", type="sma", params={"period": 20}),
            IndicatorSpec(id="atr_14", type="atr", params={"period": 14}),
        ),
        fuzzy_sets=(
            FuzzySetSpec(input="rsi_14", name="oversold", shape="triangular", params=(0, 20, 35)),
            FuzzySetSpec(input="rsi_14", name="neutral", shape="triangular", params=(30, 50, 70)),
            FuzzySetSpec(
                input="rsi_14", name="overbought", shape="triangular", params=(65, 80, 100)
            ),
            FuzzySetSpec(
                input="macd_12_26_9.histogram", name="negative", shape="gaussian", params=(-1, 1)
            ),
            FuzzySetSpec(
                input="macd_12_26_9.histogram", name="positive", shape="gaussian", params=(1, 1)
            ),
            FuzzySetSpec(
                input="sma_20.distance",
                name="below",
                shape="trapezoidal",
                params=(-1, -1, -0.03, 0),
            ),
            FuzzySetSpec(
                input="sma_20.distance",
                name="above",
                shape="trapezoidal",
                params=(0, 0.03, 1, 1),
            ),
            FuzzySetSpec(
                input="atr_14.relative", name="calm", shape="gaussian", params=(0.005, 0.005)
            ),
            FuzzySetSpec(
                input="atr_14.relative", name="volatile", shape="gaussian", params=(0.02, 0.01)
            ),
        ),
    )


# ---------------------------------------------------------------------------------------------
# Validation: one function, field paths as the proto spells them.

MAX_SYMBOLS = 64
MAX_TIMEFRAMES = 8
MAX_EPOCHS = 100_000
MAX_BATCH_SIZE = 1 << 20
MAX_BARS = 50_000_000
_SYMBOL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,31}$")
_TIMEFRAME_RE = re.compile(r"^[1-9][0-9]{0,3}(m|h|d|w)$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$")
FUZZY_SHAPES = {"triangular": 3, "trapezoidal": 4, "gaussian": 2}
ACTIVATIONS = ("relu", "tanh", "gelu", "leaky_relu", "sigmoid")


def _finite(path: str, value: float) -> None:
    if not math.isfinite(value):
        raise SpecError(path, f"must be a finite number, got {value!r}")


def validate(request: TrainingRequest, known_indicators: Mapping[str, tuple[str, ...]]) -> None:
    """Raise ``SpecError`` for the first problem found.

    ``known_indicators`` maps each indicator type to its output names (the first is the default
    output an indicator id alone refers to); the pipeline owns that catalogue.
    """
    if not request.symbols:
        raise SpecError("symbols", 'at least one symbol is required, e.g. ["SYNTH"]')
    if len(request.symbols) > MAX_SYMBOLS:
        raise SpecError("symbols", f"at most {MAX_SYMBOLS} symbols per job")
    for i, symbol in enumerate(request.symbols):
        if not _SYMBOL_RE.match(symbol):
            raise SpecError(
                f"symbols[{i}]",
                f"{symbol!r} is not a symbol: use 1-32 letters, digits, '.', '_' or '-'",
            )
    if len(set(request.symbols)) != len(request.symbols):
        raise SpecError("symbols", "symbols must not repeat")
    if not request.timeframes:
        raise SpecError("timeframes", 'at least one timeframe is required, e.g. ["1h"]')
    if len(request.timeframes) > MAX_TIMEFRAMES:
        raise SpecError("timeframes", f"at most {MAX_TIMEFRAMES} timeframes per job")
    for i, tf in enumerate(request.timeframes):
        if not _TIMEFRAME_RE.match(tf):
            raise SpecError(
                f"timeframes[{i}]", f"{tf!r} is not a timeframe: use e.g. 5m, 1h, 4h, 1d, 1w"
            )
    if len(set(request.timeframes)) != len(request.timeframes):
        raise SpecError("timeframes", "timeframes must not repeat")
    _validate_strategy(request.strategy, known_indicators)
    _validate_nn_inputs(request.strategy, request.timeframes)
    _validate_data(request.data)
    _validate_placement(request.placement)


def _validate_strategy(
    strategy: StrategySpec, known_indicators: Mapping[str, tuple[str, ...]]
) -> None:
    if not _NAME_RE.match(strategy.name):
        raise SpecError(
            "strategy.name",
            f"{strategy.name!r} is not a name: use 1-64 letters, digits, '.', '_' or '-'",
        )
    if not strategy.indicators:
        raise SpecError("strategy.indicators", "at least one indicator is required")
    outputs: dict[str, tuple[str, ...]] = {}
    for i, ind in enumerate(strategy.indicators):
        path = f"strategy.indicators[{i}]"
        if not _NAME_RE.match(ind.id):
            raise SpecError(f"{path}.id", f"{ind.id!r} is not an id: use letters, digits, '_'")
        if ind.id in outputs:
            raise SpecError(f"{path}.id", f"indicator id {ind.id!r} is used twice")
        if ind.type not in known_indicators:
            known = ", ".join(sorted(known_indicators))
            raise SpecError(f"{path}.type", f"unknown indicator {ind.type!r}; known: {known}")
        for key, value in ind.params.items():
            _finite(f"{path}.params.{key}", value)
        outputs[ind.id] = known_indicators[ind.type]
    if not strategy.fuzzy_sets:
        raise SpecError("strategy.fuzzy_sets", "at least one fuzzy set is required")
    seen: set[tuple[str, str]] = set()
    for i, fs in enumerate(strategy.fuzzy_sets):
        path = f"strategy.fuzzy_sets[{i}]"
        ind_id, _, output = fs.input.partition(".")
        if ind_id not in outputs:
            raise SpecError(
                f"{path}.input",
                f"{fs.input!r} names no indicator of this strategy"
                f" (indicators: {', '.join(outputs)})",
            )
        if output and output not in outputs[ind_id]:
            raise SpecError(
                f"{path}.input",
                f"indicator {ind_id!r} has no output {output!r} (outputs: "
                f"{', '.join(outputs[ind_id])})",
            )
        if fs.set_id and not _NAME_RE.match(fs.set_id):
            raise SpecError(
                f"{path}.set_id", f"{fs.set_id!r} is not an id: use letters, digits, '_'"
            )
        if not _NAME_RE.match(fs.name):
            raise SpecError(f"{path}.name", f"{fs.name!r} is not a name: use letters, digits, '_'")
        if (fs.group, fs.name) in seen:
            raise SpecError(f"{path}.name", f"fuzzy set {fs.group}:{fs.name} is defined twice")
        seen.add((fs.group, fs.name))
        if fs.shape not in FUZZY_SHAPES:
            raise SpecError(
                f"{path}.shape", f"unknown shape {fs.shape!r}; use one of {sorted(FUZZY_SHAPES)}"
            )
        want = FUZZY_SHAPES[fs.shape]
        if len(fs.params) != want:
            raise SpecError(
                f"{path}.params", f"a {fs.shape} set takes {want} parameters, got {len(fs.params)}"
            )
        for j, value in enumerate(fs.params):
            _finite(f"{path}.params[{j}]", value)
        if fs.shape == "gaussian":
            if fs.params[1] <= 0:
                raise SpecError(f"{path}.params[1]", "gaussian sigma must be > 0")
        elif list(fs.params) != sorted(fs.params):
            raise SpecError(f"{path}.params", f"{fs.shape} parameters must be non-decreasing")
    labels = strategy.labels
    _finite("strategy.labels.threshold", labels.threshold)
    if not 0 < labels.threshold < 1:
        raise SpecError("strategy.labels.threshold", "must be a fraction in (0, 1), e.g. 0.02")
    if not 1 <= labels.lookahead <= 10_000:
        raise SpecError("strategy.labels.lookahead", "must be between 1 and 10000 bars")
    model = strategy.model
    if not model.hidden_layers:
        raise SpecError("strategy.model.hidden_layers", "at least one hidden layer is required")
    for i, width in enumerate(model.hidden_layers):
        if not 1 <= width <= 65_536:
            raise SpecError(f"strategy.model.hidden_layers[{i}]", "must be between 1 and 65536")
    if model.activation not in ACTIVATIONS:
        raise SpecError(
            "strategy.model.activation",
            f"unknown activation {model.activation!r}; use one of {', '.join(ACTIVATIONS)}",
        )
    _finite("strategy.model.dropout", model.dropout)
    if not 0 <= model.dropout < 1:
        raise SpecError("strategy.model.dropout", "must be in [0, 1)")
    t = strategy.training
    if not 1 <= t.epochs <= MAX_EPOCHS:
        raise SpecError("strategy.training.epochs", f"must be between 1 and {MAX_EPOCHS}")
    if not 1 <= t.batch_size <= MAX_BATCH_SIZE:
        raise SpecError("strategy.training.batch_size", f"must be between 1 and {MAX_BATCH_SIZE}")
    _finite("strategy.training.learning_rate", t.learning_rate)
    if not 0 < t.learning_rate <= 10:
        raise SpecError("strategy.training.learning_rate", "must be in (0, 10], e.g. 0.001")
    if t.early_stopping_patience < 0:
        raise SpecError("strategy.training.early_stopping_patience", "must be >= 0 (0 = off)")
    for name, value in (("validation_split", t.validation_split), ("test_split", t.test_split)):
        _finite(f"strategy.training.{name}", value)
        if not 0 < value < 0.5:
            raise SpecError(f"strategy.training.{name}", "must be a fraction in (0, 0.5)")
    if t.seed < 0:
        raise SpecError("strategy.training.seed", "must be >= 0")


def _validate_nn_inputs(strategy: StrategySpec, timeframes: tuple[str, ...]) -> None:
    groups = list(dict.fromkeys(fs.group for fs in strategy.fuzzy_sets))
    used: set[tuple[str, str]] = set()
    for i, nn in enumerate(strategy.nn_inputs):
        path = f"strategy.nn_inputs[{i}]"
        if nn.fuzzy_set not in groups:
            raise SpecError(
                f"{path}.fuzzy_set",
                f"{nn.fuzzy_set!r} names no fuzzy set of this strategy (sets: {', '.join(groups)})",
            )
        for j, tf in enumerate(nn.timeframes or timeframes):
            if tf not in timeframes:
                raise SpecError(
                    f"{path}.timeframes[{j}]",
                    f"{tf!r} is not a timeframe of this request ({', '.join(timeframes)})",
                )
            if (nn.fuzzy_set, tf) in used:
                raise SpecError(f"{path}.timeframes", f"{nn.fuzzy_set} on {tf} is already an input")
            used.add((nn.fuzzy_set, tf))


_DEVICE_RE = re.compile(r"^(cpu|mps|cuda(:[0-9]{1,2})?)$")


def _validate_placement(placement: PlacementSpec) -> None:
    if placement.device and not _DEVICE_RE.match(placement.device):
        raise SpecError(
            "placement.device",
            f"{placement.device!r} is not a device: use cpu, cuda, cuda:N or mps",
        )


def _validate_data(data: DataSpec) -> None:
    if data.source is DataSource.SYNTHETIC and not 200 <= data.bars <= MAX_BARS:
        raise SpecError("data.bars", f"synthetic bars must be between 200 and {MAX_BARS}")
    if data.source is DataSource.DIRECTORY:
        if not data.path:
            raise SpecError("data.path", "a directory data source needs a path")
        if data.path.startswith("/") or ".." in data.path.split("/"):
            raise SpecError(
                "data.path", "must be relative to the trainer's data directory, without '..'"
            )
