"""The training request as plain, validated dataclasses.

Everything past the servicer edge works on these types; protobuf messages and KTRDR YAML are
translated into them (``shared.rpc.serde`` and ``shared.pipeline.strategy_yaml``). ``validate``
is the one place that decides whether a request can be trained, so every caller (the
orchestrator before it queues a job, the trainer before it starts one) rejects the same inputs
with the same field paths.
"""

from __future__ import annotations

import datetime
import enum
import itertools
import math
import re
import zoneinfo
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from shared.errors import InvalidArgumentError
from shared.ids import check_node_id
from shared.jobs import JobKind


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
    auto_threshold: bool = False
    """Calibrate the threshold from the data's swing sizes instead of ``threshold``."""


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
    early_stopping_patience: int = 5
    """Epochs without validation-loss improvement before stopping (the model keeps the weights
    of its best epoch); 0 disables early stopping."""
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
    UNSPECIFIED = "unspecified"
    """The request named no source and its symbols are not all synthetic: refused by
    ``validate``, which says what to add. Only ``shared.rpc.serde`` produces it."""
    SYNTHETIC = "synthetic"
    DIRECTORY = "directory"
    DATASET = "dataset"


SYNTHETIC_SYMBOL_PREFIX = "SYNTH"
"""Symbols of the synthetic family (``SYNTH``, ``SYNTH2``, ``SYNTH_FX``...), any case: a request
for only these that names no data source trains on the synthetic market. Every other symbol
needs a source named (a directory, a dataset, or the synthetic market asked for explicitly):
the generator never silently stands in for a real instrument."""


def is_synthetic_symbol(symbol: str) -> bool:
    """Whether ``symbol`` belongs to the synthetic family (``SYNTHETIC_SYMBOL_PREFIX``)."""
    return symbol.upper().startswith(SYNTHETIC_SYMBOL_PREFIX)


NO_SOURCE_HINT = (
    "name where the bars come from: a directory on the trainer (data.source "
    "DATA_SOURCE_KIND_DIRECTORY with data.path; CLI --data DIR), an uploaded dataset "
    "(DATA_SOURCE_KIND_DATASET with data.dataset; CLI --dataset NAME), or the synthetic market "
    "explicitly (DATA_SOURCE_KIND_SYNTHETIC; CLI --synthetic)"
)


@dataclass(frozen=True, kw_only=True)
class DataSpec:
    """Where the OHLCV bars come from.

    ``SYNTHETIC`` generates ``bars`` base-timeframe bars per symbol from ``seed`` (deterministic;
    the dataclass default, for code that builds requests itself; over the API a request names
    its source unless every symbol is synthetic, see ``SYNTHETIC_SYMBOL_PREFIX``).
    ``DIRECTORY`` reads ``{path}/`` under the trainer's data directory and ``DATASET`` the files
    of the uploaded dataset ``dataset``, both the same way (``shared.pipeline.market``):
    ``{SYMBOL}_{timeframe}.csv|parquet``, or ``{SYMBOL}.csv|parquet`` whose bar spacing is its
    timeframe, coarser timeframes resampled from the finest file.
    ``start``/``end`` are optional ISO-8601 dates or timestamps (UTC unless they name a zone)
    that bound the range, both inclusive; a date-only ``end`` covers that whole day. Every
    source honours them; the synthetic market starts at 2020-01-01, so a window outside its
    ``bars`` is refused at submit.
    """

    source: DataSource = DataSource.SYNTHETIC
    seed: int = 7
    bars: int = 3000
    path: str = ""
    start: str = ""
    end: str = ""
    dataset: str = ""
    """``DATASET``: the name of a dataset uploaded to the orchestrator."""
    dataset_sha256: str = ""
    """``DATASET``: the version the job uses, pinned by the orchestrator at submit."""
    timezone: str = ""
    """IANA zone (``America/New_York``) naive timestamps in files are taken in; empty = UTC.
    Timestamps that carry an offset, and epoch numbers, are absolute and ignore it."""


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
    kind: ClassVar[JobKind] = JobKind.TRAIN


# ---------------------------------------------------------------------------------------------
# The built-in default strategy: what a request naming only symbols and timeframes trains.


def default_strategy() -> StrategySpec:
    """Four scale-free inputs, so the same strategy means the same thing on any instrument.

    RSI is bounded (0-100); the MACD histogram is taken as a fraction of the close
    (``histogram_pct``), the close's distance from its SMA as a fraction (``distance``) and the
    ATR as a fraction of the close (``relative``), so none depends on the price level. Their
    typical size still depends on how much the instrument moves per bar (about 0.04 % for hourly
    EURUSD, 1 % for daily GOOG), so each signed input has a narrow "near zero" set beside wide
    negative/positive ramps, and the volatility ramp spans 0.1 %-3 %: every membership varies
    on slow and fast markets alike (none is a constant feature).
    """
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
            FuzzySetSpec(
                input="rsi_14", name="oversold", shape="trapezoidal", params=(0, 0, 30, 45)
            ),
            FuzzySetSpec(input="rsi_14", name="neutral", shape="triangular", params=(35, 50, 65)),
            FuzzySetSpec(
                input="rsi_14", name="overbought", shape="trapezoidal", params=(55, 70, 100, 100)
            ),
            FuzzySetSpec(
                input="macd_12_26_9.histogram_pct",
                name="negative",
                shape="trapezoidal",
                params=(-1, -1, -0.005, 0),
            ),
            FuzzySetSpec(
                input="macd_12_26_9.histogram_pct",
                name="flat",
                shape="gaussian",
                params=(0, 0.001),
            ),
            FuzzySetSpec(
                input="macd_12_26_9.histogram_pct",
                name="positive",
                shape="trapezoidal",
                params=(0, 0.005, 1, 1),
            ),
            FuzzySetSpec(
                input="sma_20.distance",
                name="below",
                shape="trapezoidal",
                params=(-1, -1, -0.03, 0),
            ),
            FuzzySetSpec(input="sma_20.distance", name="near", shape="gaussian", params=(0, 0.005)),
            FuzzySetSpec(
                input="sma_20.distance",
                name="above",
                shape="trapezoidal",
                params=(0, 0.03, 1, 1),
            ),
            FuzzySetSpec(
                input="atr_14.relative",
                name="calm",
                shape="trapezoidal",
                params=(0, 0, 0.001, 0.03),
            ),
            FuzzySetSpec(
                input="atr_14.relative",
                name="volatile",
                shape="trapezoidal",
                params=(0.001, 0.03, 1, 1),
            ),
        ),
    )


# ---------------------------------------------------------------------------------------------
# Validation: one function, field paths as the proto spells them.
#
# Every rule matches the whole string (``fullmatch``; character classes are ASCII ranges, so a
# trailing newline or a look-alike letter never passes), every string and list has a cap, and
# every number is checked against its domain range, which lies inside its proto wire type.

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
MAX_SYMBOLS = 64
MAX_TIMEFRAMES = 8
MAX_EPOCHS = 100_000
MAX_BATCH_SIZE = 1 << 20
MAX_BARS = 50_000_000
"""Synthetic bars per symbol; the job as a whole is bounded by ``JobLimits.max_bars``."""
MIN_SYNTHETIC_BARS = 200
MAX_SEED = INT64_MAX
MAX_LOOKAHEAD = 10_000
MAX_INDICATORS = 64
MAX_INDICATOR_PARAMS = 16
MAX_FUZZY_SETS = 256
MAX_NN_INPUTS = 256
MAX_HIDDEN_LAYERS = 16
MAX_LAYER_WIDTH = 65_536
MAX_REQUEST_ID = 128
MAX_DATA_PATH = 256
OUTPUT_CLASSES = 3
"""BUY, HOLD, SELL: the width of every model's output layer."""

_SYMBOL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,31}")
_TIMEFRAME_RE = re.compile(r"[1-9][0-9]{0,3}(m|h|d|w)")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,63}")
_PARAM_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_REQUEST_ID_RE = re.compile(rf"[\x21-\x7e]{{1,{MAX_REQUEST_ID}}}")
_DEVICE_RE = re.compile(r"cpu|mps|cuda(:[0-9]{1,2})?")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_TIMEZONE_RE = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]{0,31}(/[A-Za-z0-9_+\-]{1,32}){0,2}")
_DATE_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?"
)
FUZZY_SHAPES = {"triangular": 3, "trapezoidal": 4, "gaussian": 2}
ACTIVATIONS = ("relu", "tanh", "gelu", "leaky_relu", "sigmoid")


def _matches(pattern: re.Pattern[str], value: object) -> bool:
    return isinstance(value, str) and value.isascii() and pattern.fullmatch(value) is not None


def shown(value: object) -> str:
    """``value`` quoted for a message, cut so that a huge input never makes a huge error."""
    text = repr(value)
    if len(text) <= 80:
        return text
    size = f"{len(value)} characters" if isinstance(value, str) else type(value).__name__
    return f"{text[:60]}… ({size})"


def _finite(path: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(path, f"must be a number, got {shown(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise SpecError(path, f"must be a finite number, got {shown(value)}") from None
    if not math.isfinite(number):
        raise SpecError(path, f"must be a finite number, got {value!r}")
    return number


def _integer(path: str, value: object, low: int, high: int, hint: str = "") -> int:
    """``value`` if it is an integer in ``low..high``; the message gives the range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(path, f"must be a whole number, got {shown(value)}")
    if not low <= value <= high:
        raise SpecError(path, f"must be between {low} and {high}{hint}, got {shown(value)}")
    return value


class MarketRequest(Protocol):
    """What every job kind names: the market it runs on and where it runs."""

    @property
    def request_id(self) -> str: ...
    @property
    def symbols(self) -> tuple[str, ...]: ...
    @property
    def timeframes(self) -> tuple[str, ...]: ...
    @property
    def data(self) -> DataSpec: ...
    @property
    def placement(self) -> PlacementSpec: ...


def validate(request: TrainingRequest, known_indicators: Mapping[str, tuple[str, ...]]) -> None:
    """Raise ``SpecError`` for the first problem found.

    ``known_indicators`` maps each indicator type to its output names (the first is the default
    output an indicator id alone refers to); the pipeline owns that catalogue. Job size is
    ``check_limits``'s (``shared.pipeline.validate_request`` applies both).
    """
    _validate_names(request)
    _validate_strategy(request.strategy, known_indicators)
    _validate_nn_inputs(request.strategy, request.timeframes)
    _validate_data(request.data, request.symbols)
    _validate_placement(request.placement)


def validate_market(request: MarketRequest) -> None:
    """The rules every job kind shares: request id, symbols, timeframes, data, placement."""
    _validate_names(request)
    _validate_data(request.data, request.symbols)
    _validate_placement(request.placement)


def _validate_names(request: MarketRequest) -> None:
    if request.request_id and not _matches(_REQUEST_ID_RE, request.request_id):
        raise SpecError(
            "request_id",
            f"{shown(request.request_id)} is not a request id: use 1-{MAX_REQUEST_ID} printable "
            "ASCII characters without spaces, e.g. a UUID",
        )
    if not request.symbols:
        raise SpecError("symbols", 'at least one symbol is required, e.g. ["SYNTH"]')
    if len(request.symbols) > MAX_SYMBOLS:
        raise SpecError("symbols", f"at most {MAX_SYMBOLS} symbols per job")
    for i, symbol in enumerate(request.symbols):
        if not _matches(_SYMBOL_RE, symbol):
            raise SpecError(
                f"symbols[{i}]",
                f"{shown(symbol)} is not a symbol: use 1-32 ASCII letters, digits, '.', '_' or "
                "'-', starting with a letter or digit",
            )
    if len(set(request.symbols)) != len(request.symbols):
        raise SpecError("symbols", "symbols must not repeat")
    if not request.timeframes:
        raise SpecError("timeframes", 'at least one timeframe is required, e.g. ["1h"]')
    if len(request.timeframes) > MAX_TIMEFRAMES:
        raise SpecError("timeframes", f"at most {MAX_TIMEFRAMES} timeframes per job")
    for i, tf in enumerate(request.timeframes):
        if not _matches(_TIMEFRAME_RE, tf):
            raise SpecError(
                f"timeframes[{i}]",
                f"{shown(tf)} is not a timeframe: use e.g. 5m, 1h, 4h, 1d, 1w",
            )
    if len(set(request.timeframes)) != len(request.timeframes):
        raise SpecError("timeframes", "timeframes must not repeat")


def _check_name(path: str, value: object, what: str) -> None:
    if not _matches(_NAME_RE, value):
        raise SpecError(
            path,
            f"{shown(value)} is not {what}: use 1-64 ASCII letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
        )


def _validate_strategy(
    strategy: StrategySpec, known_indicators: Mapping[str, tuple[str, ...]]
) -> None:
    _check_name("strategy.name", strategy.name, "a name")
    if not strategy.indicators:
        raise SpecError("strategy.indicators", "at least one indicator is required")
    if len(strategy.indicators) > MAX_INDICATORS:
        raise SpecError("strategy.indicators", f"at most {MAX_INDICATORS} indicators per strategy")
    outputs: dict[str, tuple[str, ...]] = {}
    for i, ind in enumerate(strategy.indicators):
        path = f"strategy.indicators[{i}]"
        _check_name(f"{path}.id", ind.id, "an indicator id")
        if ind.id in outputs:
            raise SpecError(f"{path}.id", f"indicator id {ind.id!r} is used twice")
        if ind.type not in known_indicators:
            known = ", ".join(sorted(known_indicators))
            raise SpecError(f"{path}.type", f"unknown indicator {shown(ind.type)}; known: {known}")
        if len(ind.params) > MAX_INDICATOR_PARAMS:
            raise SpecError(
                f"{path}.params", f"at most {MAX_INDICATOR_PARAMS} parameters per indicator"
            )
        for key, value in ind.params.items():
            if not _matches(_PARAM_RE, key):
                raise SpecError(
                    f"{path}.params",
                    f"{shown(key)} is not a parameter name: use 1-64 ASCII letters, digits or "
                    "'_', e.g. period",
                )
            _finite(f"{path}.params.{key}", value)
        outputs[ind.id] = known_indicators[ind.type]
    if not strategy.fuzzy_sets:
        raise SpecError("strategy.fuzzy_sets", "at least one fuzzy set is required")
    if len(strategy.fuzzy_sets) > MAX_FUZZY_SETS:
        raise SpecError(
            "strategy.fuzzy_sets", f"at most {MAX_FUZZY_SETS} fuzzy set members per strategy"
        )
    seen: set[tuple[str, str]] = set()
    for i, fs in enumerate(strategy.fuzzy_sets):
        _validate_fuzzy_set(f"strategy.fuzzy_sets[{i}]", fs, outputs, seen)
    _validate_labels(strategy.labels)
    _validate_model(strategy.model)
    _validate_training(strategy.training)


def _validate_fuzzy_set(
    path: str,
    fs: FuzzySetSpec,
    outputs: Mapping[str, tuple[str, ...]],
    seen: set[tuple[str, str]],
) -> None:
    ind_id, _, output = fs.input.partition(".")
    if ind_id not in outputs:
        raise SpecError(
            f"{path}.input",
            f"{shown(fs.input)} names no indicator of this strategy"
            f" (indicators: {', '.join(outputs)})",
        )
    if output and output not in outputs[ind_id]:
        raise SpecError(
            f"{path}.input",
            f"indicator {ind_id!r} has no output {shown(output)} (outputs: "
            f"{', '.join(outputs[ind_id])})",
        )
    if fs.set_id:
        _check_name(f"{path}.set_id", fs.set_id, "a fuzzy set id")
    _check_name(f"{path}.name", fs.name, "a membership name")
    if (fs.group, fs.name) in seen:
        raise SpecError(f"{path}.name", f"fuzzy set {fs.group}:{fs.name} is defined twice")
    seen.add((fs.group, fs.name))
    if fs.shape not in FUZZY_SHAPES:
        raise SpecError(
            f"{path}.shape", f"unknown shape {shown(fs.shape)}; use one of {sorted(FUZZY_SHAPES)}"
        )
    want = FUZZY_SHAPES[fs.shape]
    if len(fs.params) != want:
        raise SpecError(
            f"{path}.params", f"a {fs.shape} set takes {want} parameters, got {len(fs.params)}"
        )
    params = [_finite(f"{path}.params[{j}]", value) for j, value in enumerate(fs.params)]
    if fs.shape == "gaussian":
        if params[1] <= 0:
            raise SpecError(f"{path}.params[1]", "gaussian sigma must be > 0")
    elif params != sorted(params):
        raise SpecError(f"{path}.params", f"{fs.shape} parameters must be non-decreasing")


def _validate_labels(labels: LabelSpec) -> None:
    threshold = _finite("strategy.labels.threshold", labels.threshold)
    if not 0 < threshold < 1:
        raise SpecError("strategy.labels.threshold", "must be a fraction in (0, 1), e.g. 0.02")
    _integer("strategy.labels.lookahead", labels.lookahead, 1, MAX_LOOKAHEAD, " bars")


def _validate_model(model: ModelSpec) -> None:
    if not model.hidden_layers:
        raise SpecError("strategy.model.hidden_layers", "at least one hidden layer is required")
    if len(model.hidden_layers) > MAX_HIDDEN_LAYERS:
        raise SpecError(
            "strategy.model.hidden_layers", f"at most {MAX_HIDDEN_LAYERS} hidden layers"
        )
    for i, width in enumerate(model.hidden_layers):
        _integer(f"strategy.model.hidden_layers[{i}]", width, 1, MAX_LAYER_WIDTH)
    if model.activation not in ACTIVATIONS:
        raise SpecError(
            "strategy.model.activation",
            f"unknown activation {shown(model.activation)}; use one of {', '.join(ACTIVATIONS)}",
        )
    if not 0 <= _finite("strategy.model.dropout", model.dropout) < 1:
        raise SpecError("strategy.model.dropout", "must be in [0, 1)")


def _validate_training(t: TrainingSpec) -> None:
    _integer("strategy.training.epochs", t.epochs, 1, MAX_EPOCHS)
    _integer("strategy.training.batch_size", t.batch_size, 1, MAX_BATCH_SIZE)
    if not 0 < _finite("strategy.training.learning_rate", t.learning_rate) <= 10:
        raise SpecError("strategy.training.learning_rate", "must be in (0, 10], e.g. 0.001")
    _integer(
        "strategy.training.early_stopping_patience",
        t.early_stopping_patience,
        0,
        MAX_EPOCHS,
        " epochs (0 = off)",
    )
    for name, value in (("validation_split", t.validation_split), ("test_split", t.test_split)):
        if not 0 < _finite(f"strategy.training.{name}", value) < 0.5:
            raise SpecError(f"strategy.training.{name}", "must be a fraction in (0, 0.5)")
    _integer("strategy.training.seed", t.seed, 0, MAX_SEED)


def _validate_nn_inputs(strategy: StrategySpec, timeframes: tuple[str, ...]) -> None:
    if len(strategy.nn_inputs) > MAX_NN_INPUTS:
        raise SpecError("strategy.nn_inputs", f"at most {MAX_NN_INPUTS} inputs")
    groups = list(dict.fromkeys(fs.group for fs in strategy.fuzzy_sets))
    used: set[tuple[str, str]] = set()
    for i, nn in enumerate(strategy.nn_inputs):
        path = f"strategy.nn_inputs[{i}]"
        if nn.fuzzy_set not in groups:
            raise SpecError(
                f"{path}.fuzzy_set",
                f"{shown(nn.fuzzy_set)} names no fuzzy set of this strategy (sets: "
                f"{', '.join(groups)})",
            )
        for j, tf in enumerate(nn.timeframes or timeframes):
            if tf not in timeframes:
                raise SpecError(
                    f"{path}.timeframes[{j}]",
                    f"{shown(tf)} is not a timeframe of this request ({', '.join(timeframes)})",
                )
            if (nn.fuzzy_set, tf) in used:
                raise SpecError(f"{path}.timeframes", f"{nn.fuzzy_set} on {tf} is already an input")
            used.add((nn.fuzzy_set, tf))


def _validate_placement(placement: PlacementSpec) -> None:
    if placement.node:
        try:
            check_node_id(placement.node, "placement.node")
        except InvalidArgumentError as exc:
            raise SpecError(exc.field, exc.message) from None
    if placement.device and not _matches(_DEVICE_RE, placement.device):
        raise SpecError(
            "placement.device",
            f"{shown(placement.device)} is not a device: use cpu, cuda, cuda:N or mps",
        )


FIRST_YEAR, LAST_YEAR = 1678, 2261
"""Bars are indexed by nanosecond timestamps, which cover 1677-09-21 to 2262-04-11."""


def date_bound(path: str, text: str, *, end: bool) -> datetime.datetime | None:
    """``text`` as a UTC instant; None when empty. ``text`` must be an ISO-8601 date
    (``2024-01-31``) or timestamp (``2024-01-31T09:30:00Z``; no zone means UTC) between
    ``FIRST_YEAR`` and ``LAST_YEAR``. A date-only ``end`` covers that whole day, so its instant
    is the last microsecond of it."""
    if not text:
        return None
    instant = None
    if _matches(_DATE_RE, text):
        try:
            instant = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            instant = None
    if instant is None or not FIRST_YEAR <= instant.year <= LAST_YEAR:
        raise SpecError(
            path,
            f"{shown(text)} is not an ISO-8601 date or timestamp between {FIRST_YEAR} and "
            f"{LAST_YEAR}: use e.g. 2024-01-31 or 2024-01-31T09:30:00Z",
        )
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=datetime.UTC)
    if end and len(text) == 10:
        instant += datetime.timedelta(days=1, microseconds=-1)
    return instant.astimezone(datetime.UTC)


def check_dates(start: str, end: str, start_path: str, end_path: str) -> None:
    """Both bounds well-formed (``date_bound``), and ``end`` not before ``start``."""
    first = date_bound(start_path, start, end=False)
    last = date_bound(end_path, end, end=True)
    if first is not None and last is not None and last < first:
        raise SpecError(end_path, f"{shown(end)} is before the start {shown(start)}")


def _validate_data(data: DataSpec, symbols: tuple[str, ...]) -> None:
    if data.source is DataSource.UNSPECIFIED:
        if data.path and data.dataset:
            raise SpecError(
                "data.dataset",
                "give either data.path (a directory on the trainer) or data.dataset (an "
                "uploaded dataset), not both",
            )
        real = next((s for s in symbols if not is_synthetic_symbol(s)), symbols[0])
        raise SpecError(
            "data.source",
            f"{real} is not a synthetic symbol (those start with {SYNTHETIC_SYMBOL_PREFIX}), and "
            f"the request names no data source: {NO_SOURCE_HINT}",
        )
    _integer("data.seed", data.seed, 0, MAX_SEED)
    if data.source is DataSource.SYNTHETIC:
        _integer("data.bars", data.bars, MIN_SYNTHETIC_BARS, MAX_BARS, " synthetic bars")
    else:
        _integer("data.bars", data.bars, 0, INT32_MAX)
    if data.source is DataSource.DIRECTORY:
        if not data.path:
            raise SpecError(
                "data.path",
                "a directory data source needs a path (CLI --data DIR), relative to "
                "the trainer's data directory",
            )
        if len(data.path) > MAX_DATA_PATH:
            raise SpecError("data.path", f"at most {MAX_DATA_PATH} characters")
        if not data.path.isprintable():
            raise SpecError("data.path", "must not contain control characters")
        if data.path.startswith("/") or ".." in data.path.split("/"):
            raise SpecError(
                "data.path", "must be relative to the trainer's data directory, without '..'"
            )
    elif data.path:
        raise SpecError("data.path", "only a directory data source reads a path")
    if data.source is DataSource.DATASET:
        if not data.dataset:
            raise SpecError(
                "data.dataset",
                "a dataset data source needs the name of an uploaded dataset (CLI --dataset "
                "NAME; trainwire datasets list shows them)",
            )
        _check_name("data.dataset", data.dataset, "a dataset name")
        if data.dataset_sha256 and not _matches(_SHA256_RE, data.dataset_sha256):
            raise SpecError(
                "data.dataset_sha256",
                f"{shown(data.dataset_sha256)} is not a sha256: 64 lowercase hex digits (leave "
                "it empty: the orchestrator pins the version at submit)",
            )
    else:
        if data.dataset:
            raise SpecError("data.dataset", "only a dataset data source reads a dataset name")
        if data.dataset_sha256:
            raise SpecError("data.dataset_sha256", "only a dataset data source has a version")
    _validate_timezone(data)
    check_dates(data.start, data.end, "data.start", "data.end")


def _validate_timezone(data: DataSpec) -> None:
    """An IANA name this machine's timezone database knows; only files read naive times."""
    if not data.timezone:
        return
    zone = None
    if _matches(_TIMEZONE_RE, data.timezone):
        try:
            zone = zoneinfo.ZoneInfo(data.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            zone = None
    if zone is None:
        raise SpecError(
            "data.timezone",
            f"{shown(data.timezone)} is not an IANA timezone: use e.g. UTC, Europe/London or "
            "America/New_York",
        )
    if data.source is DataSource.SYNTHETIC and data.timezone.upper() != "UTC":
        raise SpecError(
            "data.timezone",
            "the synthetic market's bars are in UTC; a timezone applies to the naive timestamps "
            "of files (a directory or dataset source) only",
        )


# ---------------------------------------------------------------------------------------------
# Job size: what a request will cost, estimated at submit and refused above configurable limits.


@dataclass(frozen=True)
class JobLimits:
    """The largest job a service accepts.

    ``max_parameters``: weights and biases of the model (4 bytes each as float32; the default
    is about 200 MB). ``max_bars``: bars over every series of the job (symbol x timeframe).
    """

    max_parameters: int = 50_000_000
    max_bars: int = 20_000_000

    def __post_init__(self) -> None:
        for name in ("max_parameters", "max_bars"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"JobLimits.{name} must be a positive integer, got {value!r}")


DEFAULT_LIMITS = JobLimits()


@dataclass(frozen=True)
class JobSize:
    features: int
    """Model inputs: fuzzy memberships x the timeframes ``nn_inputs`` selects."""
    parameters: int
    """Weights and biases of the MLP features → hidden layers → ``OUTPUT_CLASSES``."""
    bars: int | None
    """Bars over all series (synthetic: ``data.bars`` x symbols x timeframes); None for a
    directory source, whose size is known only when the trainer reads the files (its loader
    refuses more than ``JobLimits.max_bars`` then)."""


def feature_count(strategy: StrategySpec, timeframes: tuple[str, ...]) -> int:
    """How many inputs the model gets (the length of the pipeline's feature list)."""
    if not strategy.nn_inputs:
        return len(strategy.fuzzy_sets) * len(timeframes)
    members = Counter(fs.group for fs in strategy.fuzzy_sets)
    return sum(
        members[nn.fuzzy_set] * len(nn.timeframes or timeframes) for nn in strategy.nn_inputs
    )


def estimate(request: TrainingRequest) -> JobSize:
    """The size of a validated request."""
    features = feature_count(request.strategy, request.timeframes)
    widths = (features, *request.strategy.model.hidden_layers, OUTPUT_CLASSES)
    parameters = sum((a + 1) * b for a, b in itertools.pairwise(widths))
    bars = None
    if request.data.source is DataSource.SYNTHETIC:
        bars = request.data.bars * len(request.symbols) * len(request.timeframes)
    return JobSize(features=features, parameters=parameters, bars=bars)


def check_limits(request: TrainingRequest, limits: JobLimits = DEFAULT_LIMITS) -> None:
    """Raise ``SpecError`` when a validated request is larger than ``limits``; the message names
    the estimate, the limit and what to change."""
    size = estimate(request)
    if size.parameters > limits.max_parameters:
        layers = "→".join(
            str(n) for n in (size.features, *request.strategy.model.hidden_layers, OUTPUT_CLASSES)
        )
        raise SpecError(
            "strategy.model.hidden_layers",
            f"the model {layers} has {size.parameters:,} parameters "
            f"({size.parameters * 4 / 2**30:.1f} GiB as float32), more than the limit of "
            f"{limits.max_parameters:,} parameters per job (max_parameters); use fewer or "
            "narrower hidden_layers, or fewer inputs (nn_inputs)",
        )
    if size.bars is not None and size.bars > limits.max_bars:
        n_sym, n_tf = len(request.symbols), len(request.timeframes)
        raise SpecError(
            "data.bars",
            f"the job would use {size.bars:,} bars ({request.data.bars:,} bars x {n_sym} "
            f"symbol{'s' if n_sym != 1 else ''} x {n_tf} timeframe{'s' if n_tf != 1 else ''}), "
            f"more than the limit of {limits.max_bars:,} bars per job (max_bars); use fewer "
            "data.bars, symbols or timeframes",
        )
