"""KTRDR v3 strategy YAML → ``StrategySpec``.

The v3 grammar has three separate sections: ``indicators`` (``{id: {type, **params}}``),
``fuzzy_sets`` (``{set_id: {indicator: id[.output], member: shape}}``) and ``nn_inputs``
(``[{fuzzy_set, timeframes: all | [..]}]``), plus ``model`` and ``training``. A member's shape is
the shorthand ``[a, b, c]`` (triangular) or ``{type, parameters}`` with ``type`` one of
triangular, trapezoidal (``trapezoid``), gaussian (``[mean, sigma]``).

Training hyperparameters are read from ``training`` and, as older KTRDR files keep them, from
``model.training``; ``training`` wins. ``training_data`` supplies symbols, timeframes and the
``start``/``end`` dates when the request names none. Labels take ``threshold: auto`` (or
``zigzag_threshold: auto``) to calibrate the threshold on the data (``LabelSpec.auto_threshold``).

Timeframes follow the request. ``training_data.timeframes`` (base first) are the strategy's
*default* timeframes: a request that names its own replaces them position by position, the
base with the base, and every ``nn_inputs`` timeframe that names one of the file's timeframes
moves with it. A file written for ``[1h, 4h]`` with ``trend: [4h]`` trained with
``--timeframes 1d 1w`` takes ``trend`` on ``1w`` (``ParsedStrategy.for_timeframes``). An input
on a position the request does not have (the file's second timeframe, a request with one) is
an error naming both lists; a timeframe the file's list does not name is taken as it is.
The data source is not part of a strategy: the request names it (a directory, a dataset or the
synthetic market), and the file's symbols follow the same rule as the request's own.

Keys KTRDR uses for things trainwire does not do (``decisions``, ``model.features``,
``optimizer``, ...) are accepted and ignored; any other unknown key is an error, so a typo
never silently falls back to a default. A key given twice in one mapping, or one setting given
under two of its spellings (``threshold`` and ``zigzag_threshold``), is an error too: the file
never silently means something else.

Every error is a ``SpecError`` on field ``strategy_yaml`` whose message gives the YAML path (and
line for syntax errors). Semantic checks (references, shapes, ranges) are ``spec.validate``'s.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import yaml
from yaml.constructor import ConstructorError

from shared import spec

MAX_YAML_BYTES = 256 * 1024
MAX_DEPTH = 32
FIELD = "strategy_yaml"

_SHAPE_ALIASES = {
    "triangular": "triangular",
    "triangle": "triangular",
    "trapezoidal": "trapezoidal",
    "trapezoid": "trapezoidal",
    "gaussian": "gaussian",
}
_TOP_KEYS = {"name", "version", "description", "indicators", "fuzzy_sets", "nn_inputs", "model"}
_TOP_KEYS |= {"training", "training_data", "labels"}
_TOP_IGNORED = {"decisions", "scope", "hypothesis", "metadata", "orchestrator", "deployment"}
_MODEL_KEYS = {"type", "architecture", "training", "hidden_layers", "activation", "dropout"}
_MODEL_IGNORED = {"features", "output_activation", "name"}
_ARCH_KEYS = {"hidden_layers", "activation", "dropout"}
_ARCH_IGNORED = {"output_activation", "batch_norm"}
_TRAINING_KEYS = {
    "epochs",
    "batch_size",
    "learning_rate",
    "early_stopping",
    "early_stopping_patience",
    "validation_split",
    "test_split",
    "data_split",
    "seed",
    "labels",
    "method",
}
_TRAINING_IGNORED = {"optimizer", "scheduler", "weight_decay", "gradient_clip", "loss"}
_LABEL_KEYS = {
    "source",
    "method",
    "zigzag_threshold",
    "threshold",
    "label_lookahead",
    "lookahead",
}


MAX_MESSAGE = 1000
"""Paths and values from the file are echoed; a huge key or value is cut, never sent whole."""


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[: limit - 40]}…{text[-20:]} ({len(text)} characters)"


class _YamlError(Exception):
    def __init__(self, path: str, message: str) -> None:
        path = _cut(path, 200)
        super().__init__(_cut(f"{path}: {message}" if path else message, MAX_MESSAGE))


@dataclass(frozen=True)
class ParsedStrategy:
    strategy: spec.StrategySpec
    symbols: tuple[str, ...]
    """From ``training_data``; empty when the file names none."""
    timeframes: tuple[str, ...]
    start: str = ""
    """``training_data.start`` as ISO-8601 (``DataSpec.start``); empty when the file has none."""
    end: str = ""

    def for_timeframes(self, timeframes: tuple[str, ...]) -> spec.StrategySpec:
        """The strategy for a request on ``timeframes``: each ``nn_inputs`` timeframe that is
        the file's i-th timeframe becomes the request's i-th (see the module docstring).
        Raises ``SpecError`` on ``strategy_yaml`` for an input on a position the request lacks.
        """
        own = self.timeframes
        if not own or not timeframes or tuple(timeframes) == own:
            return self.strategy
        inputs = []
        for i, nn in enumerate(self.strategy.nn_inputs):
            mapped = []
            for j, tf in enumerate(nn.timeframes):
                if tf not in own:
                    mapped.append(tf)
                    continue
                position = own.index(tf)
                if position >= len(timeframes):
                    raise spec.SpecError(
                        FIELD,
                        f"nn_inputs[{i}].timeframes[{j}]: {tf} is timeframe {position + 1} of the "
                        f"strategy's [{', '.join(own)}], and the request has "
                        f"{len(timeframes)} ({', '.join(timeframes)}): give at least "
                        f"{position + 1} timeframes (they replace the strategy's in order, "
                        "base first)",
                    )
                mapped.append(timeframes[position])
            inputs.append(spec.NNInputSpec(fuzzy_set=nn.fuzzy_set, timeframes=tuple(mapped)))
        return replace(self.strategy, nn_inputs=tuple(inputs))


class _Loader(yaml.SafeLoader):
    """``SafeLoader`` whose value errors (a 5000-digit integer, year 0) are YAML errors with a
    line, not crashes."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except (ValueError, OverflowError) as exc:
            problem = str(exc).split(";")[0][:120]
            raise ConstructorError(
                None, None, f"cannot read this value ({problem})", node.start_mark
            ) from None


def parse_strategy_yaml(text: str) -> ParsedStrategy:
    """Parse and translate; raise ``SpecError(field="strategy_yaml")`` naming the YAML path."""
    if len(text.encode()) > MAX_YAML_BYTES:
        raise spec.SpecError(FIELD, f"larger than {MAX_YAML_BYTES // 1024} KiB")
    try:
        _check_shape(text)
        document = _load(text)
        return _translate(document)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise spec.SpecError(FIELD, f"not valid YAML{where}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise spec.SpecError(FIELD, f"not valid YAML: {str(exc)[:300]}") from None
    except _YamlError as exc:
        raise spec.SpecError(FIELD, str(exc)) from None


def _load(text: str) -> object:
    """The document, after refusing duplicate keys (naming their path)."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        _check_duplicates(loader, root, "")
        return loader.construct_document(root)
    finally:
        loader.dispose()


def _check_duplicates(loader: _Loader, node: yaml.Node, path: str) -> None:
    """A key given twice in one mapping is an error naming its path and both lines (YAML keeps
    the last silently). Recursion is bounded: ``_check_shape`` has refused deep nesting."""
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_duplicates(loader, item, f"{path}[{i}]")
    elif isinstance(node, yaml.MappingNode):
        seen: dict[object, yaml.Node] = {}
        for key_node, value_node in node.value:
            child = path
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = loader.construct_object(key_node)
                name = key if isinstance(key, str) and len(key) <= 64 else spec.shown(key)
                child = f"{path}.{name}" if path else str(name)
                first = seen.get(key) if _hashable(key) else None
                if first is not None:
                    raise _YamlError(
                        child,
                        f"duplicate key (line {key_node.start_mark.line + 1}; first given at "
                        f"line {first.start_mark.line + 1}): give each key once",
                    )
                if _hashable(key):
                    seen[key] = key_node
            _check_duplicates(loader, value_node, child)


def _hashable(value: object) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _check_shape(text: str) -> None:
    """Refuse aliases (``*a`` expands exponentially: a 600-byte billion-laughs file costs
    gigabytes) and nesting deeper than ``MAX_DEPTH`` (the composer recurses), by scanning the
    event stream first, which is iterative and cheap."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            raise spec.SpecError(
                FIELD, f"YAML aliases (*name) are not supported{_line(event)}; write values out"
            )
        if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise spec.SpecError(FIELD, f"nested deeper than {MAX_DEPTH} levels{_line(event)}")
        elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            depth -= 1


def _line(event: yaml.Event) -> str:
    mark = event.start_mark
    return f" (line {mark.line + 1})" if mark is not None else ""


# --- helpers ------------------------------------------------------------------------------------


def _mapping(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _YamlError(path, f"must be a mapping, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise _YamlError(path, f"keys must be strings, got {spec.shown(key)}")
    return value


def _keys(value: Mapping[str, Any], path: str, known: set[str], ignored: set[str]) -> None:
    for key in value:
        if key not in known and key not in ignored:
            where = f"{path}.{key}" if path else key
            raise _YamlError(where, f"unknown key; known: {', '.join(sorted(known))}")


def _pick(doc: Mapping[str, Any], path: str, names: tuple[str, ...], default: object) -> object:
    """The value of the one spelling of a setting that ``doc`` gives (``default`` if none);
    two spellings at once are an error, since one of them would be silently dropped."""
    given = [name for name in names if name in doc]
    if len(given) > 1:
        where = f"{path}.{given[1]}" if path else given[1]
        raise _YamlError(where, f"the same setting as {given[0]!r}: give only one of them")
    return doc[given[0]] if given else default


def _number(value: object, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _YamlError(path, f"must be a number, got {spec.shown(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise _YamlError(path, f"must be finite, got {spec.shown(value)}") from None
    if not math.isfinite(number):
        raise _YamlError(path, f"must be finite, got {value!r}")
    return number


def _integer(value: object, path: str) -> int:
    """An integer; its range is ``spec.validate``'s (which names the ``strategy.`` field)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _YamlError(path, f"must be an integer, got {spec.shown(value)}")
    return value


def _string(value: object, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise _YamlError(path, f"must be a non-empty string, got {spec.shown(value)}")
    return value


def _strings(value: object, path: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list):
        raise _YamlError(path, f"must be a list of strings, got {spec.shown(value)}")
    return tuple(_string(v, f"{path}[{i}]") for i, v in enumerate(value))


def _date(value: object, path: str) -> str:
    """An ISO-8601 date or timestamp, given quoted or as a YAML date (``start: 2024-01-31``)."""
    if isinstance(value, datetime.datetime | datetime.date):
        text = value.isoformat()
    elif isinstance(value, str):
        text = value
    else:
        raise _YamlError(
            path, f"must be an ISO-8601 date such as 2024-01-31, got {spec.shown(value)}"
        )
    try:
        spec.date_bound(path, text, end=False)
    except spec.SpecError as exc:
        raise _YamlError(path, exc.message) from None
    return text


# --- sections -----------------------------------------------------------------------------------


def _translate(document: object) -> ParsedStrategy:
    doc = _mapping(document, "")
    _keys(doc, "", _TOP_KEYS, _TOP_IGNORED)
    version = str(doc.get("version", "3"))
    if not version.startswith("3"):
        raise _YamlError("version", f"{spec.shown(version)}: only v3 strategies are supported")
    name = _string(doc.get("name"), "name")
    if "indicators" not in doc:
        raise _YamlError("indicators", "required: a mapping {id: {type, params...}}")
    if "fuzzy_sets" not in doc:
        raise _YamlError("fuzzy_sets", "required: a mapping {set_id: {indicator, members...}}")
    indicators = _indicators(doc["indicators"])
    fuzzy_sets = _fuzzy_sets(doc["fuzzy_sets"])
    nn_inputs = _nn_inputs(doc.get("nn_inputs", []))
    model_doc = _mapping(doc.get("model", {}), "model")
    _keys(model_doc, "model", _MODEL_KEYS, _MODEL_IGNORED)
    training_doc: dict[str, Any] = {}
    if "training" in model_doc:
        training_doc.update(_mapping(model_doc["training"], "model.training"))
    if "training" in doc:
        training_doc.update(_mapping(doc["training"], "training"))
    label_doc = dict(_mapping(training_doc.pop("labels", {}), "training.labels"))
    if "labels" in doc:
        label_doc.update(_mapping(doc["labels"], "labels"))
    data = _training_data(doc.get("training_data", {}))
    strategy = spec.StrategySpec(
        name=name,
        indicators=indicators,
        fuzzy_sets=fuzzy_sets,
        nn_inputs=nn_inputs,
        labels=_labels(label_doc),
        model=_model(model_doc),
        training=_training(training_doc),
    )
    return ParsedStrategy(
        strategy=strategy,
        symbols=data.symbols,
        timeframes=data.timeframes,
        start=data.start,
        end=data.end,
    )


def _indicators(value: object) -> tuple[spec.IndicatorSpec, ...]:
    out = []
    for ind_id, body in _mapping(value, "indicators").items():
        path = f"indicators.{ind_id}"
        fields = _mapping(body, path)
        kind = _string(fields.get("type"), f"{path}.type")
        params = {
            key: _number(v, f"{path}.{key}") for key, v in fields.items() if key not in ("type",)
        }
        out.append(spec.IndicatorSpec(id=ind_id, type=kind.lower(), params=params))
    return tuple(out)


def _fuzzy_sets(value: object) -> tuple[spec.FuzzySetSpec, ...]:
    out = []
    for set_id, body in _mapping(value, "fuzzy_sets").items():
        path = f"fuzzy_sets.{set_id}"
        fields = _mapping(body, path)
        source = _string(fields.get("indicator"), f"{path}.indicator")
        members = {k: v for k, v in fields.items() if k != "indicator"}
        if not members:
            raise _YamlError(path, "needs at least one membership, e.g. low: [0, 20, 40]")
        for member, shape_doc in members.items():
            shape, params = _shape(shape_doc, f"{path}.{member}")
            out.append(
                spec.FuzzySetSpec(
                    input=source, name=member, shape=shape, params=params, set_id=set_id
                )
            )
    return tuple(out)


def _shape(value: object, path: str) -> tuple[str, tuple[float, ...]]:
    if isinstance(value, list):
        shape, raw = "triangular", value
    else:
        fields = _mapping(value, path)
        _keys(fields, path, {"type", "parameters"}, set())
        kind = _string(fields.get("type"), f"{path}.type").lower()
        if kind not in _SHAPE_ALIASES:
            raise _YamlError(
                f"{path}.type",
                f"unknown shape {spec.shown(kind)}; use triangular, trapezoidal or gaussian",
            )
        shape, parameters = _SHAPE_ALIASES[kind], fields.get("parameters")
        if not isinstance(parameters, list):
            raise _YamlError(f"{path}.parameters", "must be a list of numbers")
        raw = parameters
    return shape, tuple(_number(v, f"{path}[{i}]") for i, v in enumerate(raw))


def _nn_inputs(value: object) -> tuple[spec.NNInputSpec, ...]:
    if not isinstance(value, list):
        raise _YamlError("nn_inputs", "must be a list of {fuzzy_set, timeframes}")
    out = []
    for i, item in enumerate(value):
        path = f"nn_inputs[{i}]"
        fields = _mapping(item, path)
        _keys(fields, path, {"fuzzy_set", "timeframes"}, set())
        tfs = fields.get("timeframes", "all")
        timeframes = () if tfs == "all" else _strings(tfs, f"{path}.timeframes")
        out.append(
            spec.NNInputSpec(
                fuzzy_set=_string(fields.get("fuzzy_set"), f"{path}.fuzzy_set"),
                timeframes=timeframes,
            )
        )
    return tuple(out)


def _labels(doc: Mapping[str, Any]) -> spec.LabelSpec:
    _keys(doc, "training.labels", _LABEL_KEYS, set())
    d = spec.LabelSpec()
    path = "training.labels"
    source = _string(_pick(doc, path, ("source", "method"), d.method.value), f"{path}.source")
    try:
        method = spec.LabelMethod(source.lower())
    except ValueError:
        raise _YamlError(
            "training.labels.source",
            f"unknown label source {spec.shown(source)}; use zigzag or forward_return",
        ) from None
    threshold = _pick(doc, path, ("threshold", "zigzag_threshold"), d.threshold)
    lookahead = _pick(doc, path, ("lookahead", "label_lookahead"), d.lookahead)
    auto = isinstance(threshold, str) and threshold.strip().lower() == "auto"
    return spec.LabelSpec(
        method=method,
        threshold=d.threshold if auto else _threshold(threshold),
        lookahead=_integer(lookahead, "training.labels.lookahead"),
        auto_threshold=auto,
    )


def _threshold(value: object) -> float:
    if isinstance(value, str):
        raise _YamlError(
            "training.labels.threshold",
            f"must be a fraction such as 0.02, or auto, got {spec.shown(value)}",
        )
    return _number(value, "training.labels.threshold")


def _model(doc: Mapping[str, Any]) -> spec.ModelSpec:
    d = spec.ModelSpec()
    kind = _string(doc.get("type", "mlp"), "model.type").lower()
    if kind != "mlp":
        raise _YamlError("model.type", f"{spec.shown(kind)}: only mlp models are supported")
    arch = dict(_mapping(doc.get("architecture", {}), "model.architecture"))
    _keys(arch, "model.architecture", _ARCH_KEYS, _ARCH_IGNORED)
    for key in _ARCH_KEYS:
        if key in doc:
            if key in arch:
                raise _YamlError(
                    f"model.{key}", f"also given as model.architecture.{key}: give only one"
                )
            arch[key] = doc[key]
    layers = arch.get("hidden_layers", list(d.hidden_layers))
    if not isinstance(layers, list):
        raise _YamlError("model.architecture.hidden_layers", "must be a list of widths")
    return spec.ModelSpec(
        hidden_layers=tuple(
            _integer(w, f"model.architecture.hidden_layers[{i}]") for i, w in enumerate(layers)
        ),
        activation=_string(
            arch.get("activation", d.activation), "model.architecture.activation"
        ).lower(),
        dropout=_number(arch.get("dropout", d.dropout), "model.architecture.dropout"),
    )


def _training(doc: Mapping[str, Any]) -> spec.TrainingSpec:
    _keys(doc, "training", _TRAINING_KEYS, _TRAINING_IGNORED)
    d = spec.TrainingSpec()
    method = _string(doc.get("method", "supervised"), "training.method")
    if method.lower() != "supervised":
        raise _YamlError("training.method", f"{spec.shown(method)}: only supervised is supported")
    stopping = _pick(doc, "training", ("early_stopping_patience", "early_stopping"), None)
    patience: object = d.early_stopping_patience
    if "early_stopping" in doc:
        stop = _mapping(stopping, "training.early_stopping")
        _keys(stop, "training.early_stopping", {"enabled", "patience"}, {"min_delta", "monitor"})
        enabled = stop.get("enabled", True)
        if not isinstance(enabled, bool):
            raise _YamlError(
                "training.early_stopping.enabled",
                f"must be true or false, got {spec.shown(enabled)}",
            )
        patience = stop.get("patience", 10) if enabled else 0
    elif stopping is not None:
        patience = stopping
    split: Mapping[str, Any] = {}
    if "data_split" in doc:
        split = _mapping(doc["data_split"], "training.data_split")
        _keys(split, "training.data_split", {"train", "validation", "test"}, set())
        for key in ("validation", "test"):
            if key in split and f"{key}_split" in doc:
                raise _YamlError(
                    f"training.data_split.{key}",
                    f"also given as training.{key}_split: give only one",
                )
    validation = split.get("validation", doc.get("validation_split", d.validation_split))
    test = split.get("test", doc.get("test_split", d.test_split))
    if "train" in split:
        parts = [
            _number(split["train"], "training.data_split.train"),
            _number(validation, "training.validation_split"),
            _number(test, "training.test_split"),
        ]
        if abs(sum(parts) - 1) > 1e-6:
            raise _YamlError(
                "training.data_split",
                f"train + validation + test = {sum(parts):g}; they must add up to 1 (or leave "
                "out train: it is what the others leave)",
            )
    return spec.TrainingSpec(
        epochs=_integer(doc.get("epochs", d.epochs), "training.epochs"),
        batch_size=_integer(doc.get("batch_size", d.batch_size), "training.batch_size"),
        learning_rate=_number(doc.get("learning_rate", d.learning_rate), "training.learning_rate"),
        early_stopping_patience=_integer(patience, "training.early_stopping.patience"),
        validation_split=_number(validation, "training.validation_split"),
        test_split=_number(test, "training.test_split"),
        seed=_integer(doc.get("seed", d.seed), "training.seed"),
    )


@dataclass(frozen=True)
class _TrainingData:
    symbols: tuple[str, ...]
    timeframes: tuple[str, ...]
    start: str
    end: str


def _training_data(value: object) -> _TrainingData:
    doc = _mapping(value, "training_data")
    _keys(doc, "training_data", {"symbols", "timeframes", "start", "end"}, {"history_required"})
    symbols: tuple[str, ...] = ()
    timeframes: tuple[str, ...] = ()
    if "symbols" in doc:
        path = "training_data.symbols"
        sym = _mapping(doc["symbols"], path)
        _keys(sym, path, {"mode", "list", "symbol"}, set())
        one = _pick(sym, path, ("list", "symbol"), None)
        if "list" in sym:
            symbols = _strings(one, f"{path}.list")
        elif one is not None:
            symbols = (_string(one, f"{path}.symbol"),)
    if "timeframes" in doc:
        path = "training_data.timeframes"
        tfd = _mapping(doc["timeframes"], path)
        _keys(tfd, path, {"mode", "list", "timeframe", "base_timeframe"}, set())
        one = _pick(tfd, path, ("list", "timeframe"), None)
        if "list" in tfd:
            timeframes = _strings(one, f"{path}.list")
        elif one is not None:
            timeframes = (_string(one, f"{path}.timeframe"),)
        base = tfd.get("base_timeframe")
        if base is not None:
            base = _string(base, f"{path}.base_timeframe")
            if base not in timeframes:
                raise _YamlError(f"{path}.base_timeframe", f"{spec.shown(base)} is not in the list")
            timeframes = (base, *(tf for tf in timeframes if tf != base))
    start = _date(doc["start"], "training_data.start") if "start" in doc else ""
    end = _date(doc["end"], "training_data.end") if "end" in doc else ""
    try:
        spec.check_dates(start, end, "training_data.start", "training_data.end")
    except spec.SpecError as exc:
        raise _YamlError(exc.field, exc.message) from None
    return _TrainingData(symbols=symbols, timeframes=timeframes, start=start, end=end)
