"""KTRDR v3 strategy YAML → ``StrategySpec``.

The v3 grammar has three separate sections: ``indicators`` (``{id: {type, **params}}``),
``fuzzy_sets`` (``{set_id: {indicator: id[.output], member: shape}}``) and ``nn_inputs``
(``[{fuzzy_set, timeframes: all | [..]}]``), plus ``model`` and ``training``. A member's shape is
the shorthand ``[a, b, c]`` (triangular) or ``{type, parameters}`` with ``type`` one of
triangular, trapezoidal (``trapezoid``), gaussian (``[mean, sigma]``).

Training hyperparameters are read from ``training`` and, as older KTRDR files keep them, from
``model.training``; ``training`` wins. ``training_data`` supplies symbols and timeframes when the
request names none. Keys KTRDR uses for things trainwire does not do (``decisions``,
``model.features``, ``optimizer``, ...) are accepted and ignored; any other unknown key is an
error, so a typo never silently falls back to a default.

Every error is a ``SpecError`` on field ``strategy_yaml`` whose message gives the YAML path (and
line for syntax errors). Semantic checks (references, shapes, ranges) are ``spec.validate``'s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

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


class _YamlError(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)


@dataclass(frozen=True)
class ParsedStrategy:
    strategy: spec.StrategySpec
    symbols: tuple[str, ...]
    """From ``training_data``; empty when the file names none."""
    timeframes: tuple[str, ...]


def parse_strategy_yaml(text: str) -> ParsedStrategy:
    """Parse and translate; raise ``SpecError(field="strategy_yaml")`` naming the YAML path."""
    if len(text.encode()) > MAX_YAML_BYTES:
        raise spec.SpecError(FIELD, f"larger than {MAX_YAML_BYTES // 1024} KiB")
    try:
        _check_shape(text)
        document = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise spec.SpecError(FIELD, f"not valid YAML{where}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise spec.SpecError(FIELD, f"not valid YAML: {exc}") from None
    try:
        return _translate(document)
    except _YamlError as exc:
        raise spec.SpecError(FIELD, str(exc)) from None


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
            raise _YamlError(path, f"keys must be strings, got {key!r}")
    return value


def _keys(value: Mapping[str, Any], path: str, known: set[str], ignored: set[str]) -> None:
    for key in value:
        if key not in known and key not in ignored:
            where = f"{path}.{key}" if path else key
            raise _YamlError(where, f"unknown key; known: {', '.join(sorted(known))}")


def _number(value: object, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _YamlError(path, f"must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise _YamlError(path, f"must be finite, got {value!r}")
    return number


def _integer(value: object, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _YamlError(path, f"must be an integer, got {value!r}")
    return value


def _string(value: object, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise _YamlError(path, f"must be a non-empty string, got {value!r}")
    return value


def _strings(value: object, path: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list):
        raise _YamlError(path, f"must be a list of strings, got {value!r}")
    return tuple(_string(v, f"{path}[{i}]") for i, v in enumerate(value))


# --- sections -----------------------------------------------------------------------------------


def _translate(document: object) -> ParsedStrategy:
    doc = _mapping(document, "")
    _keys(doc, "", _TOP_KEYS, _TOP_IGNORED)
    version = str(doc.get("version", "3"))
    if not version.startswith("3"):
        raise _YamlError("version", f"{version!r}: only v3 strategies are supported")
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
    symbols, timeframes = _training_data(doc.get("training_data", {}))
    strategy = spec.StrategySpec(
        name=name,
        indicators=indicators,
        fuzzy_sets=fuzzy_sets,
        nn_inputs=nn_inputs,
        labels=_labels(label_doc),
        model=_model(model_doc),
        training=_training(training_doc),
    )
    return ParsedStrategy(strategy=strategy, symbols=symbols, timeframes=timeframes)


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
                f"{path}.type", f"unknown shape {kind!r}; use triangular, trapezoidal or gaussian"
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
    source = str(doc.get("source", doc.get("method", d.method.value))).lower()
    try:
        method = spec.LabelMethod(source)
    except ValueError:
        raise _YamlError(
            "training.labels.source",
            f"unknown label source {source!r}; use zigzag or forward_return",
        ) from None
    threshold = doc.get("zigzag_threshold", doc.get("threshold", d.threshold))
    lookahead = doc.get("label_lookahead", doc.get("lookahead", d.lookahead))
    return spec.LabelSpec(
        method=method,
        threshold=_number(threshold, "training.labels.threshold"),
        lookahead=_integer(lookahead, "training.labels.lookahead"),
    )


def _model(doc: Mapping[str, Any]) -> spec.ModelSpec:
    d = spec.ModelSpec()
    kind = str(doc.get("type", "mlp")).lower()
    if kind != "mlp":
        raise _YamlError("model.type", f"{kind!r}: only mlp models are supported")
    arch = dict(_mapping(doc.get("architecture", {}), "model.architecture"))
    _keys(arch, "model.architecture", _ARCH_KEYS, _ARCH_IGNORED)
    for key in _ARCH_KEYS:
        if key in doc:
            arch.setdefault(key, doc[key])
    layers = arch.get("hidden_layers", list(d.hidden_layers))
    if not isinstance(layers, list):
        raise _YamlError("model.architecture.hidden_layers", "must be a list of widths")
    return spec.ModelSpec(
        hidden_layers=tuple(
            _integer(w, f"model.architecture.hidden_layers[{i}]") for i, w in enumerate(layers)
        ),
        activation=str(arch.get("activation", d.activation)).lower(),
        dropout=_number(arch.get("dropout", d.dropout), "model.architecture.dropout"),
    )


def _training(doc: Mapping[str, Any]) -> spec.TrainingSpec:
    _keys(doc, "training", _TRAINING_KEYS, _TRAINING_IGNORED)
    d = spec.TrainingSpec()
    patience = doc.get("early_stopping_patience", d.early_stopping_patience)
    if "early_stopping" in doc:
        stop = _mapping(doc["early_stopping"], "training.early_stopping")
        _keys(stop, "training.early_stopping", {"enabled", "patience"}, {"min_delta", "monitor"})
        enabled = stop.get("enabled", True)
        patience = stop.get("patience", 10) if enabled else 0
    validation = doc.get("validation_split", d.validation_split)
    test = doc.get("test_split", d.test_split)
    if "data_split" in doc:
        split = _mapping(doc["data_split"], "training.data_split")
        _keys(split, "training.data_split", {"train", "validation", "test"}, set())
        validation = split.get("validation", validation)
        test = split.get("test", test)
    return spec.TrainingSpec(
        epochs=_integer(doc.get("epochs", d.epochs), "training.epochs"),
        batch_size=_integer(doc.get("batch_size", d.batch_size), "training.batch_size"),
        learning_rate=_number(doc.get("learning_rate", d.learning_rate), "training.learning_rate"),
        early_stopping_patience=_integer(patience, "training.early_stopping.patience"),
        validation_split=_number(validation, "training.validation_split"),
        test_split=_number(test, "training.test_split"),
        seed=_integer(doc.get("seed", d.seed), "training.seed"),
    )


def _training_data(value: object) -> tuple[tuple[str, ...], tuple[str, ...]]:
    doc = _mapping(value, "training_data")
    _keys(doc, "training_data", {"symbols", "timeframes"}, {"history_required", "start", "end"})
    symbols: tuple[str, ...] = ()
    timeframes: tuple[str, ...] = ()
    if "symbols" in doc:
        sym = _mapping(doc["symbols"], "training_data.symbols")
        if "list" in sym:
            symbols = _strings(sym["list"], "training_data.symbols.list")
        elif "symbol" in sym:
            symbols = (_string(sym["symbol"], "training_data.symbols.symbol"),)
    if "timeframes" in doc:
        tfd = _mapping(doc["timeframes"], "training_data.timeframes")
        if "list" in tfd:
            timeframes = _strings(tfd["list"], "training_data.timeframes.list")
            base = tfd.get("base_timeframe")
            if base is not None:
                base = _string(base, "training_data.timeframes.base_timeframe")
                if base not in timeframes:
                    raise _YamlError(
                        "training_data.timeframes.base_timeframe", f"{base!r} is not in the list"
                    )
                timeframes = (base, *(tf for tf in timeframes if tf != base))
        elif "timeframe" in tfd:
            timeframes = (_string(tfd["timeframe"], "training_data.timeframes.timeframe"),)
    return symbols, timeframes
