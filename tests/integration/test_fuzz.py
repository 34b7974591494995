"""Property-based fuzzing of the public API over real gRPC: client input never makes INTERNAL.

An in-process orchestrator with no trainer node (so nothing trains) takes generated
``TrainRequest`` messages (a valid request with a few fields replaced by adversarial values:
huge and boundary integers, NaN and infinities, unicode look-alikes, trailing newlines, empty
and very long strings, unknown enum values), strategy YAML texts (a valid file mutated:
duplicate keys, huge numbers, wrong types, deep nesting, aliases, tags, truncation) and
``ListJobs``/``ListModels`` page tokens. Every answer must be OK or a precise status: never
INTERNAL or UNKNOWN (nor a hang), and every INVALID_ARGUMENT names the field to fix in a
``BadRequest`` field violation.

``TRAINWIRE_FUZZ_EXAMPLES`` sets the examples per property (default 300, for ``make test``);
``TRAINWIRE_FUZZ_EXAMPLES=2500`` sends over 10,000 requests in all.
"""

from __future__ import annotations

import asyncio
import base64
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.orchestrator.config import OrchestratorConfig
from services.orchestrator.server import create_server as create_orchestrator
from shared.pipeline import INDICATOR_OUTPUTS, validate_request
from shared.rpc import plumbing, serde
from shared.rpc.errors import from_rpc_error
from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import orchestrator_pb2_grpc
from shared.rpc.v1 import strategy_pb2 as spb
from shared.spec import SpecError
from shared.strategy_yaml import parse_strategy_yaml

pytestmark = pytest.mark.timeout(3600)

EXAMPLES = int(os.environ.get("TRAINWIRE_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)
CALL_TIMEOUT_S = 30.0
SENT: Counter[str] = Counter()
"""Requests sent per RPC, printed when the module's orchestrator stops."""
OUTCOMES: Counter[str] = Counter()
"""Status codes (and the field, for INVALID_ARGUMENT) of the answers."""


# -- the orchestrator ------------------------------------------------------------------------------


@dataclass
class Served:
    stub: orchestrator_pb2_grpc.OrchestratorStub
    address: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """An orchestrator with no trainer node, on its own event loop in a thread, and a
    blocking client (Hypothesis drives plain functions)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fuzz-orchestrator", daemon=True)
    thread.start()
    root: Path = tmp_path_factory.mktemp("fuzz")
    config = OrchestratorConfig(listen="127.0.0.1:0", state_dir=root / "state")
    server = asyncio.run_coroutine_threadsafe(create_orchestrator(config), loop).result(60)
    channel = grpc.insecure_channel(server.address, options=list(plumbing.CHANNEL_OPTIONS))
    try:
        yield Served(orchestrator_pb2_grpc.OrchestratorStub(channel), server.address)
    finally:
        channel.close()
        asyncio.run_coroutine_threadsafe(server.stop(0), loop).result(60)
        asyncio.run_coroutine_threadsafe(_cancel_the_rest(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(60)
        loop.close()
        total = sum(SENT.values())
        print(f"\nfuzz: {total} requests sent ({', '.join(f'{k} {v}' for k, v in SENT.items())})")
        if os.environ.get("TRAINWIRE_FUZZ_REPORT"):
            for outcome, count in OUTCOMES.most_common():
                print(f"  {count:6d}  {outcome}")


async def _cancel_the_rest() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _answer_is_precise(rpc: str, call: Callable[[], object], request: Message) -> None:
    SENT[rpc] += 1
    try:
        call()
        OUTCOMES[f"{rpc} OK"] += 1
    except grpc.RpcError as exc:
        code = exc.code()
        details = exc.details() or ""
        field = from_rpc_error(exc).field
        OUTCOMES[f"{rpc} {code.name} {field[:40]}"] += 1
        shown = f"{rpc}: {code.name} {details[:400]!r}\nrequest: {str(request)[:1500]}"
        assert code not in (
            grpc.StatusCode.INTERNAL,
            grpc.StatusCode.UNKNOWN,
            grpc.StatusCode.DEADLINE_EXCEEDED,
        ), shown
        if code is grpc.StatusCode.INVALID_ARGUMENT:
            assert field, f"INVALID_ARGUMENT without a field path: {shown}"
        assert len(details) < 4096, shown


# -- values --------------------------------------------------------------------------------------

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
ADVERSARIAL_TEXT = [
    "",
    " ",
    "\n",
    "\x00",
    "\t",
    "SYNTH",
    "SYNTH\n",
    " SYNTH",
    "SYNTH ",
    "\uff33\uff39\uff2e\uff34\uff28",  # fullwidth SYNTH
    "\u0410APL",  # Cyrillic A
    "1h",
    "1h\n",
    "0h",
    "9999w",
    "10000m",
    "\uff11h",
    "\u0661h",  # Arabic-Indic digit one
    "\u00b2",
    "-1",
    "1e400",
    "NaN",
    "../etc",
    "a/../../b",
    "/etc/passwd",
    "rsi",
    "RSI",
    "rsi_14",
    "rsi_14.value",
    "macd_12_26_9.histogram",
    "cpu",
    "cpu\n",
    "cuda:1",
    "cuda:99",
    "cuda:\u00b9",
    "mps",
    "2020-02-01",
    "2020-02-01T00:00:00Z",
    "2024-13-01",
    "0000-01-01",
    "1000-01-01",
    "9999-12-31",
    "2020-01-01T25:00",
    "now",
    "127.0.0.1:50052",
    "localhost:1",
    "[::1]:1",
    "host:0",
    "host:99999",
    "unix:/tmp/x",
    "caf\u00e9",
    "\U0001f642",
    "%s%n",
    "{}",
    "*a",
    "!!python/object:os.system",
    "a" * 65,
    "a" * 300,
]
KNOWN_TYPES = sorted(INDICATOR_OUTPUTS)


def texts() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(ADVERSARIAL_TEXT),
        st.text(max_size=40),
        st.text(alphabet=st.characters(codec="ascii"), max_size=16),
        st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,70}\n?", fullmatch=True),
        st.integers(0, 300_000).map(lambda n: "A" * n),
    )


def int32() -> st.SearchStrategy[int]:
    edges = [0, 1, -1, 2, 199, 200, 3000, 10_000, 65_536, 65_537, 100_000, 100_001]
    return st.one_of(
        st.sampled_from([*edges, 50_000_000, 50_000_001, 1 << 20, *INT32]),
        st.integers(*INT32),
    )


def int64() -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from([0, -1, 1, *INT64, 2**32, 2**53 + 1]), st.integers(*INT64))


def doubles() -> st.SearchStrategy[float]:
    return st.one_of(
        st.sampled_from([0.0, -0.0, 0.02, 0.2, 0.5, 1.0, 1e-300, 5e-324, 1e300, -1e300]),
        st.floats(allow_nan=True, allow_infinity=True),
    )


def enums() -> st.SearchStrategy[int]:
    return st.one_of(st.integers(-1, 4), st.integers(*INT32))


def lists(values: st.SearchStrategy[Any], big: int = 70) -> st.SearchStrategy[list[Any]]:
    return st.one_of(
        st.lists(values, max_size=4),
        st.integers(0, big).flatmap(lambda n: st.lists(values, min_size=n, max_size=n)),
    )


# -- TrainRequest: a valid request with a few fields made adversarial ------------------------------

Draw = Callable[[st.SearchStrategy[Any]], Any]
Mutation = Callable[[Draw, spb.TrainRequest], None]


def _indicator(draw: Draw) -> spb.IndicatorSpec:
    return spb.IndicatorSpec(
        id=draw(st.one_of(st.just("rsi_14"), texts())),
        type=draw(st.one_of(st.sampled_from(KNOWN_TYPES), texts())),
        params=draw(st.dictionaries(texts(), doubles(), max_size=3)),
    )


def _fuzzy_set(draw: Draw) -> spb.FuzzySetSpec:
    return spb.FuzzySetSpec(
        input=draw(st.one_of(st.sampled_from(["rsi_14", "rsi_14.value", "rsi_14.nope"]), texts())),
        name=draw(st.one_of(st.just("low"), texts())),
        shape=draw(st.one_of(st.sampled_from(["triangular", "trapezoidal", "gaussian"]), texts())),
        params=draw(st.lists(doubles(), max_size=5)),
        set_id=draw(st.one_of(st.just(""), texts())),
    )


def _set(path: str, values: Callable[[], st.SearchStrategy[Any]]) -> Mutation:
    *parents, leaf = path.split(".")

    def mutate(draw: Draw, msg: spb.TrainRequest) -> None:
        target: Any = msg
        for name in parents:
            target = getattr(target, name)
        setattr(target, leaf, draw(values()))

    mutate.__name__ = f"set {path}"
    return mutate


def _replace(path: str, values: st.SearchStrategy[list[Any]]) -> Mutation:
    *parents, leaf = path.split(".")

    def mutate(draw: Draw, msg: spb.TrainRequest) -> None:
        target: Any = msg
        for name in parents:
            target = getattr(target, name)
        field = getattr(target, leaf)
        del field[:]
        field.extend(draw(values))

    mutate.__name__ = f"replace {path}"
    return mutate


def _indicators(draw: Draw, msg: spb.TrainRequest) -> None:
    del msg.strategy.indicators[:]
    msg.strategy.indicators.extend(_indicator(draw) for _ in range(draw(st.integers(0, 3))))


def _fuzzy_sets(draw: Draw, msg: spb.TrainRequest) -> None:
    del msg.strategy.fuzzy_sets[:]
    msg.strategy.fuzzy_sets.extend(_fuzzy_set(draw) for _ in range(draw(st.integers(0, 3))))


def _nn_inputs(draw: Draw, msg: spb.TrainRequest) -> None:
    del msg.strategy.nn_inputs[:]
    for _ in range(draw(st.integers(0, 3))):
        msg.strategy.nn_inputs.add(
            fuzzy_set=draw(st.one_of(st.sampled_from(["rsi_14", "rsi"]), texts())),
            timeframes=draw(lists(st.one_of(st.just("1h"), texts()), big=12)),
        )


def _indicator_params(draw: Draw, msg: spb.TrainRequest) -> None:
    params = msg.strategy.indicators[0].params
    params.clear()
    params.update(draw(st.dictionaries(texts(), doubles(), max_size=20)))


def _yaml_instead(draw: Draw, msg: spb.TrainRequest) -> None:
    msg.ClearField("strategy")
    msg.strategy_yaml = draw(yaml_texts())


def _both_strategies(draw: Draw, msg: spb.TrainRequest) -> None:
    msg.strategy_yaml = draw(yaml_texts())


MUTATIONS: list[Mutation] = [
    _set("request_id", texts),
    _replace("symbols", lists(st.one_of(st.sampled_from(["SYNTH", "ALPHA"]), texts()))),
    _replace("timeframes", lists(st.one_of(st.sampled_from(["1h", "4h", "1d", "5m"]), texts()))),
    _set("strategy.name", texts),
    _indicators,
    _indicator_params,
    _fuzzy_sets,
    _nn_inputs,
    _set("strategy.labels.method", enums),
    _set("strategy.labels.threshold", doubles),
    _set("strategy.labels.lookahead", int32),
    _replace("strategy.model.hidden_layers", lists(int32(), big=40)),
    _set("strategy.model.activation", texts),
    _set("strategy.model.dropout", doubles),
    _set("strategy.training.epochs", int32),
    _set("strategy.training.batch_size", int32),
    _set("strategy.training.learning_rate", doubles),
    _set("strategy.training.early_stopping_patience", int32),
    _set("strategy.training.validation_split", doubles),
    _set("strategy.training.test_split", doubles),
    _set("strategy.training.seed", int64),
    _set("data.source", enums),
    _set("data.seed", int64),
    _set("data.bars", int32),
    _set("data.path", texts),
    _set("data.start", texts),
    _set("data.end", texts),
    _set("placement.mode", enums),
    _set("placement.require_gpu", st.booleans),
    _set("placement.node", texts),
    _set("placement.allow_fallback", st.booleans),
    _set("placement.device", texts),
    _yaml_instead,
    _both_strategies,
]


@st.composite
def train_requests(draw: Draw) -> spb.TrainRequest:
    msg = spb.TrainRequest(
        symbols=draw(st.sampled_from([["SYNTH"], ["SYNTH", "ALPHA"]])),
        timeframes=draw(st.sampled_from([["1h"], ["1h", "4h"]])),
        data=spb.DataSpec(bars=draw(st.sampled_from([0, 500, 3000]))),
    )
    if draw(st.booleans()):
        msg.strategy.CopyFrom(
            spb.StrategySpec(
                name="fuzz",
                indicators=[spb.IndicatorSpec(id="rsi_14", type="rsi", params={"period": 14})],
                fuzzy_sets=[
                    spb.FuzzySetSpec(
                        input="rsi_14", name="low", shape="triangular", params=[0, 20, 40]
                    )
                ],
                training=spb.TrainingSpec(epochs=1),
            )
        )
    for mutate in draw(st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=3)):
        if mutate is _indicator_params and not msg.strategy.indicators:
            continue
        mutate(draw, msg)
    return msg


# -- strategy YAML: a valid file mutated -----------------------------------------------------------

YAML_PATHS = [
    ("name",),
    ("version",),
    ("indicators",),
    ("indicators", "rsi_14"),
    ("indicators", "rsi_14", "type"),
    ("indicators", "rsi_14", "period"),
    ("fuzzy_sets",),
    ("fuzzy_sets", "rsi_zone", "indicator"),
    ("fuzzy_sets", "rsi_zone", "low"),
    ("fuzzy_sets", "rsi_zone", "high"),
    ("nn_inputs",),
    ("model",),
    ("model", "type"),
    ("model", "architecture", "hidden_layers"),
    ("model", "architecture", "activation"),
    ("model", "architecture", "dropout"),
    ("model", "training"),
    ("training",),
    ("training", "epochs"),
    ("training", "batch_size"),
    ("training", "learning_rate"),
    ("training", "seed"),
    ("training", "early_stopping"),
    ("training", "early_stopping", "patience"),
    ("training", "early_stopping_patience"),
    ("training", "data_split"),
    ("training", "data_split", "train"),
    ("training", "labels", "source"),
    ("training", "labels", "threshold"),
    ("training", "labels", "zigzag_threshold"),
    ("training", "labels", "lookahead"),
    ("training", "method"),
    ("training_data",),
    ("training_data", "symbols", "list"),
    ("training_data", "symbols", "symbol"),
    ("training_data", "timeframes", "list"),
    ("training_data", "timeframes", "base_timeframe"),
    ("training_data", "start"),
    ("training_data", "end"),
    ("decisions",),
]

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([0, -1, 1, 14, 2**31, 2**63, 10**20, -(10**30), 10**400]),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    texts(),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(texts(), inner, max_size=4)
    ),
    max_leaves=12,
)


def _valid_document() -> dict[str, Any]:
    return {
        "name": "fuzz",
        "version": "3.0",
        "training_data": {
            "symbols": {"mode": "single", "symbol": "SYNTH"},
            "timeframes": {"mode": "single", "timeframe": "1h"},
        },
        "indicators": {"rsi_14": {"type": "rsi", "period": 14}},
        "fuzzy_sets": {
            "rsi_zone": {"indicator": "rsi_14", "low": [0, 20, 40], "high": [60, 80, 100]}
        },
        "model": {"type": "mlp", "architecture": {"hidden_layers": [8], "activation": "relu"}},
        "training": {"epochs": 1, "labels": {"source": "zigzag", "threshold": 0.02}},
    }


def _put(document: dict[str, Any], path: tuple[str, ...], value: object) -> None:
    target: Any = document
    for key in path[:-1]:
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    target[path[-1]] = value


def _drop(document: dict[str, Any], path: tuple[str, ...]) -> None:
    target: Any = document
    for key in path[:-1]:
        target = target.get(key)
        if not isinstance(target, dict):
            return
    target.pop(path[-1], None)


_TAGGED = [
    "\nx: !!binary aGVsbG8=\n",
    "\nx: !!set {a, b}\n",
    "\nx: !!python/name:os.system\n",
    "\nx: !!timestamp 0000-01-01\n",
    "\nx: !!float 1e400\n",
    "\nx: !!int 0x" + "f" * 5000 + "\n",
    "\nx: !!omap [a: 1, a: 2]\n",
    "\n? [a, b]\n: c\n",
    "\n? {a: 1}\n: c\n",
    "\nx: 1:30:00\n",
    "\nx: 0o777\n",
    "\nx: 2020-01-01 00:00:00.123456789 +99:00\n",
]


TEXT_MUTATIONS: list[Callable[[Draw, str], str]] = [
    lambda draw, text: _duplicate_line(draw, text),
    lambda draw, text: text + draw(st.sampled_from(["name: again\n", "training: {epochs: 9}\n"])),
    lambda draw, text: "x: &a [1, 2]\n" + text + "y: *a\n",
    lambda draw, text: text + "deep: " + "[" * draw(st.integers(1, 200)) + "]" * 200 + "\n",
    lambda draw, text: text + "deep2: " + "{a: " * draw(st.integers(1, 60)) + "1" + "}" * 60,
    lambda draw, text: text[: draw(st.integers(0, len(text)))],
    lambda draw, text: _insert(draw, text, draw(texts())),
    lambda draw, text: _insert(draw, text, draw(st.sampled_from(_TAGGED))),
    lambda draw, text: text.replace("14", "9" * draw(st.sampled_from([20, 400, 4301, 6000]))),
    lambda draw, text: text.replace(
        "0.02", draw(st.sampled_from(["1e400", ".nan", "-.inf", "1" + "0" * 400]))
    ),
    lambda draw, text: text + "training_data: {start: " + draw(texts()).replace("\n", " ") + "}\n",
    lambda draw, text: "%YAML 1.1\n---\n" + text + "---\nname: second\n",
    lambda draw, text: text + "<<: {epochs: 3}\n",
    lambda draw, text: text.replace("\n", "\r\n"),
    lambda draw, text: "\ufeff" + text,
]


def _duplicate_line(draw: Draw, text: str) -> str:
    lines = text.splitlines(keepends=True)
    if not lines:
        return text
    i = draw(st.integers(0, len(lines) - 1))
    return "".join([*lines[: i + 1], lines[i], *lines[i + 1 :]])


def _insert(draw: Draw, text: str, piece: str) -> str:
    at = draw(st.integers(0, len(text)))
    return text[:at] + piece + text[at:]


@st.composite
def yaml_texts(draw: Draw) -> str:
    document = _valid_document()
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(YAML_PATHS))
        if draw(st.integers(0, 4)) == 0:
            _drop(document, path)
        else:
            _put(document, path, draw(_values))
    try:
        text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    except (yaml.YAMLError, OverflowError, ValueError):
        text = yaml.safe_dump(_valid_document(), sort_keys=False)
    for mutate in draw(st.lists(st.sampled_from(TEXT_MUTATIONS), max_size=2)):
        text = mutate(draw, text)
    return text


# -- page tokens ----------------------------------------------------------------------------------


def page_tokens() -> st.SearchStrategy[str]:
    return st.one_of(
        texts(),
        st.integers(-(10**30), 10**30).map(str),
        st.integers(1, 6000).map(lambda n: "9" * n),
        st.integers(*INT64).map(lambda n: base64.urlsafe_b64encode(str(n).encode()).decode()),
        st.binary(max_size=64).map(lambda b: base64.urlsafe_b64encode(b).decode()),
        st.binary(max_size=64).map(lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")),
    )


# -- the properties --------------------------------------------------------------------------------


@FUZZ
@given(request=train_requests())
def test_submit_never_answers_internal(served: Served, request: spb.TrainRequest) -> None:
    _answer_is_precise(
        "SubmitJob", lambda: served.stub.SubmitJob(request, timeout=CALL_TIMEOUT_S), request
    )


@FUZZ
@given(text=yaml_texts(), with_symbols=st.booleans())
def test_strategy_yaml_never_answers_internal(
    served: Served, text: str, with_symbols: bool
) -> None:
    request = spb.TrainRequest(strategy_yaml=text)
    if with_symbols:
        request.symbols.append("SYNTH")
        request.timeframes.append("1h")
    _answer_is_precise(
        "SubmitJob", lambda: served.stub.SubmitJob(request, timeout=CALL_TIMEOUT_S), request
    )


@FUZZ
@given(token=page_tokens(), size=int32(), states=st.lists(enums(), max_size=3))
def test_list_jobs_page_tokens_never_answer_internal(
    served: Served, token: str, size: int, states: list[int]
) -> None:
    request = opb.ListJobsRequest(page_token=token, page_size=size)
    request.states.extend(states)  # type: ignore[arg-type]  # unknown values are the point
    _answer_is_precise(
        "ListJobs", lambda: served.stub.ListJobs(request, timeout=CALL_TIMEOUT_S), request
    )


@FUZZ
@given(token=page_tokens(), size=int32(), strategy=st.one_of(st.just(""), texts()))
def test_list_models_page_tokens_never_answer_internal(
    served: Served, token: str, size: int, strategy: str
) -> None:
    request = opb.ListModelsRequest(page_token=token, page_size=size, strategy=strategy)
    _answer_is_precise(
        "ListModels", lambda: served.stub.ListModels(request, timeout=CALL_TIMEOUT_S), request
    )


@FUZZ
@given(request=train_requests())
def test_translation_and_validation_raise_only_spec_errors(request: spb.TrainRequest) -> None:
    """In process, without gRPC: the same requests, and the stored form of those that pass."""
    SENT["in-process"] += 1
    try:
        validate_request(serde.request_from_proto(request))
    except SpecError as exc:
        assert exc.field
        assert len(exc.message) < 4096
        return
    serde.request_to_proto(serde.request_from_proto(request)).SerializeToString()


@FUZZ
@given(text=yaml_texts())
def test_yaml_parsing_raises_only_spec_errors(text: str) -> None:
    SENT["in-process"] += 1
    try:
        parse_strategy_yaml(text)
    except SpecError as exc:
        assert exc.field == "strategy_yaml"
        assert len(exc.message) < 4096
