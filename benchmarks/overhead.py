"""What our instrumentation costs in training, and how fast preprocessing is.

Training overhead. Two cases, interleaved in one run on the same tensors:

- ``instrumented``: the real ``shared.pipeline.training.train_model`` inside step 9 of a real
  ``ProgressTracker`` (adaptive batch throttling, epoch and step updates), with a
  ``CancellationToken`` checked at every batch. Updates are consumed the way the trainer service
  consumes them: the tracker's sink is ``JobRun.progress_sink`` of ``services.trainer.jobs``,
  which hands each update to an asyncio event loop on another thread; there ``JobRun`` turns it
  into a wire ``JobEvent`` (``event_from_update``), stamps it and appends it to the job's log.
  The loop is drained at the end of every run, inside the timed region.
- ``bare``: a plain PyTorch loop doing the same work as ``train_model`` minus progress,
  cancellation and throttling: the same model (``build_model`` from the same seed, dropout drawing
  from the same seeded generator), Adam, cross-entropy, batch size, epochs and shuffling (a
  seeded CPU ``randperm`` per epoch), the epoch's mean training loss reduced once per epoch from
  device-side losses, and validation loss/accuracy per epoch (``evaluate_loss``, the function
  ``train_model`` calls), and early stopping as ``train_model`` does it when the spec's patience
  is on (the default strategy's is): a copy of the weights at each epoch that improves the
  validation loss, a stop after ``patience`` epochs without improvement, the best copy loaded
  at the end.
  What ``train_model`` does on top, and is therefore charged to instrumentation: the cancellation
  check, ``batch_due()`` and keeping each batch's detached logits (per batch); the metrics of the
  reported batches; the epoch's training accuracy (once per epoch, for the EPOCH update and the
  history); the tracker's updates and their consumption.
  Both cases end with bit-identical weights; the benchmark checks that (``weights_identical``),
  so the comparison stays honest if either side drifts.

``ratio`` is median(instrumented)/median(bare) of wall seconds over pairs of runs whose order
alternates (instrumented first, then bare first, ...) so that whatever the first run of a pair
pays or leaves behind falls on both cases alike; ``ratio_ci95`` is a bootstrap interval over
the pairs, i.e. how finely this machine can resolve the ratio. ``cpu_*`` are the same figures
in process CPU seconds (all threads), which leave out time spent waiting for a core while other
processes keep the machine busy.
``--threads`` (default 1) sets torch's intra-op threads: this MLP's kernels are too small to be
split, and on a shared 2-vCPU machine an OpenMP pool of 2 made 0.2 s epochs take 4-10 s.

The data are the default strategy's features (steps 1-6 of a real run) on synthetic bars, split
and scaled as step 7 does.

Preprocessing throughput. Steps 1-6 (``prepare_dataset``: synthetic bars, the default
strategy's indicators, fuzzy memberships, features, labels) on one series of ``--candles`` bars,
as candles per second; and every indicator type in ``INDICATOR_OUTPUTS`` (whatever it holds when
this runs, default parameters) on the same bars, as candles x indicators per second.

    .venv/bin/python benchmarks/overhead.py [--quick] [--repeats N] [--epochs N] [--bars N]
                                            [--candles N] [--threads N]

``--quick`` (a smoke run: 5 repeats of 3 epochs, 200k candles) finishes in well under a minute on
a 2-core machine; the full run (31 repeats of 6 epochs, 1M candles) takes a few minutes.
"""

from __future__ import annotations

import asyncio
import gc
import math
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped, unused-ignore]
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import base_parser, median, report, timed
from services.trainer.jobs import JobRun, JobSpec
from shared.cancellation import CancellationToken
from shared.pipeline import indicators as indicators_module
from shared.pipeline.features import split_dataset
from shared.pipeline.job import JobContext, TrainingJob
from shared.pipeline.labels import CLASSES
from shared.pipeline.market import load_bars
from shared.pipeline.model import attach_generator, build_model
from shared.pipeline.preprocess import prepare_dataset
from shared.pipeline.training import TrainingData, TrainingResult, evaluate_loss, train_model
from shared.progress.tracker import ProgressTracker
from shared.progress.update import ProgressUpdate
from shared.spec import DataSpec, IndicatorSpec, TrainingRequest, default_strategy

TRAINING_STEP = 9
"""``Training model`` in ``TRAINING_STEPS``: ``run_training`` calls ``train_model`` inside it."""
WARMUP = 1
SYMBOL = "BENCH"
TIMEFRAME = "1h"


# -- data ----------------------------------------------------------------------------------------


def _request(bars: int, epochs: int | None = None) -> TrainingRequest:
    strategy = default_strategy()
    if epochs is not None:
        strategy = replace(strategy, training=replace(strategy.training, epochs=epochs))
    return TrainingRequest(
        symbols=(SYMBOL,),
        timeframes=(TIMEFRAME,),
        strategy=strategy,
        data=DataSpec(bars=bars),
        request_id="bench",
    )


def _discard(update: ProgressUpdate) -> None:
    del update


def _quiet_job(request: TrainingRequest) -> TrainingJob:
    return JobContext(request, ProgressTracker(_discard), CancellationToken())


def training_data(request: TrainingRequest) -> TrainingData:
    """Steps 1-7 of a real run: the default strategy's features, split and scaled."""
    dataset = prepare_dataset(_quiet_job(request), None)
    strategy = request.strategy
    spec = strategy.training
    splits = split_dataset(
        dataset, spec.validation_split, spec.test_split, purge=strategy.labels.lookahead
    )
    return TrainingData(splits.x_train, splits.y_train, splits.x_val, splits.y_val)


def fresh_model(request: TrainingRequest, n_features: int) -> nn.Sequential:
    """Step 8, as ``run._create_model`` does it."""
    strategy = request.strategy
    generator = torch.Generator().manual_seed(strategy.training.seed)
    return build_model(n_features, len(CLASSES), strategy.model, generator=generator)


# -- the two training cases ----------------------------------------------------------------------


@contextmanager
def event_loop_thread() -> Iterator[asyncio.AbstractEventLoop]:
    """An asyncio loop on its own thread, like the trainer service's."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="bench-loop", daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


async def _nothing() -> None:
    return None


@dataclass
class Instrumented:
    """``train_model`` with the real tracker, token and the trainer's event consumer."""

    request: TrainingRequest
    data: TrainingData
    loop: asyncio.AbstractEventLoop
    last_run: JobRun | None = None
    last_result: TrainingResult | None = None
    final_state: dict[str, torch.Tensor] | None = None

    def __call__(self) -> None:
        job_spec = JobSpec(job_id="bench", request=self.request, upload_target="", upload_token="")
        run = JobRun(job_spec, node="bench-node", loop=self.loop)
        token = run.token
        tracker = ProgressTracker(run.progress_sink)
        job = JobContext(self.request, tracker, token)
        model = fresh_model(self.request, self.data.x_train.shape[1])
        with job.step(TRAINING_STEP):
            result = train_model(
                model, self.data, self.request.strategy.training, reporter=tracker, cancel=token
            )
        # Every update handed to the loop is consumed before the clock stops.
        asyncio.run_coroutine_threadsafe(_nothing(), self.loop).result()
        self.last_run, self.last_result = run, result
        self.final_state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def event_counts(self) -> dict[str, int]:
        """Events of the last run by kind (``step``, ``epoch``, ``batch``)."""
        counts: dict[str, int] = {}
        for event in self.last_run.events if self.last_run else []:
            counts[event.kind.value] = counts.get(event.kind.value, 0) + 1
        return counts


@dataclass
class Bare:
    """The same training work in a plain PyTorch loop: no progress, cancellation or throttling."""

    request: TrainingRequest
    data: TrainingData
    final_state: dict[str, torch.Tensor] | None = None

    def __call__(self) -> None:
        spec = self.request.strategy.training
        model = fresh_model(self.request, self.data.x_train.shape[1])
        shuffle_gen = torch.Generator().manual_seed(spec.seed)
        attach_generator(model, torch.Generator().manual_seed(spec.seed + 1))
        x = torch.as_tensor(self.data.x_train)
        y = torch.as_tensor(self.data.y_train)
        x_val = torch.as_tensor(self.data.x_val)
        y_val = torch.as_tensor(self.data.y_val)
        n = len(y)
        batch_size = min(spec.batch_size, n)
        n_batches = math.ceil(n / batch_size)
        sizes = torch.full((n_batches,), float(batch_size))
        sizes[-1] = float(n - batch_size * (n_batches - 1))
        optimizer = torch.optim.Adam(model.parameters(), lr=spec.learning_rate)
        patience = spec.early_stopping_patience
        best_loss, waited = math.inf, 0
        best_state: dict[str, torch.Tensor] | None = None
        history: list[tuple[float, float, float]] = []
        model.train()
        for _ in range(spec.epochs):
            perm = torch.randperm(n, generator=shuffle_gen)
            losses: list[torch.Tensor] = []
            for b in range(n_batches):
                idx = perm[b * batch_size : (b + 1) * batch_size]
                xb, yb = x[idx], y[idx]
                optimizer.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()  # type: ignore[no-untyped-call, unused-ignore]
                optimizer.step()
                losses.append(loss.detach())
            epoch_loss = float(((torch.stack(losses) * sizes).sum() / n).item())
            val_loss, val_acc = evaluate_loss(model, x_val, y_val)
            history.append((epoch_loss, val_loss, val_acc))
            if patience <= 0:
                continue
            if val_loss < best_loss:
                best_loss, waited = val_loss, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                waited += 1
                if waited >= patience:
                    break
        if best_state is not None:
            model.load_state_dict(best_state)
        attach_generator(model, None)
        model.eval()
        self.final_state = {k: v.detach().clone() for k, v in model.state_dict().items()}


@dataclass
class CpuTimed:
    """Calls ``fn`` and records the process CPU seconds (all threads) each call took.

    ``alternating`` times wall seconds; on a machine shared with other busy processes those
    include time this process spent waiting for a core, CPU seconds do not.
    """

    fn: Callable[[], object]
    seconds: list[float] = field(default_factory=list)

    def __call__(self) -> None:
        start = time.process_time()
        self.fn()
        self.seconds.append(time.process_time() - start)


def alternating(
    cases: dict[str, Callable[[], object]], repeats: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Wall seconds of ``repeats`` pairs of runs, the order within a pair alternating."""
    for _ in range(warmup):
        for fn in cases.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for i in range(repeats):
        for name in names if i % 2 == 0 else reversed(names):
            samples[name].append(timed(cases[name]))
    return samples


def ratio_ci95(inst: list[float], bare: list[float], rounds: int = 2000) -> tuple[float, float]:
    """Bootstrap 95 % interval of median(inst)/median(bare), resampling the interleaved pairs."""
    rng = random.Random(0)
    pairs = list(zip(inst, bare, strict=True))
    ratios = []
    for _ in range(rounds):
        sample = rng.choices(pairs, k=len(pairs))
        ratios.append(median([a for a, _ in sample]) / median([b for _, b in sample]))
    ratios.sort()
    return ratios[int(0.025 * rounds)], ratios[int(0.975 * rounds) - 1]


def same_weights(a: dict[str, torch.Tensor] | None, b: dict[str, torch.Tensor] | None) -> bool:
    if a is None or b is None or a.keys() != b.keys():
        return False
    return all(torch.equal(a[k], b[k]) for k in a)


# -- preprocessing -------------------------------------------------------------------------------


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median wall seconds of ``repeats`` calls."""
    times: list[float] = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return median(times)


def preprocess_throughput(candles: int, repeats: int) -> dict[str, Any]:
    """Steps 1-6 of the default strategy, and every known indicator, on ``candles`` bars."""
    request = _request(candles)
    steps_s = _median_seconds(lambda: prepare_dataset(_quiet_job(request), None), repeats)

    bars: pd.DataFrame = load_bars(request.data, SYMBOL, TIMEFRAME)
    default_s = _median_seconds(
        lambda: [indicators_module.compute_indicator(s, bars) for s in request.strategy.indicators],
        repeats,
    )
    # Whatever the registry holds when this runs, default parameters; aliases (other spellings
    # of one type, where the module has them) are counted once.
    aliases: dict[str, str] = getattr(indicators_module, "TYPE_ALIASES", {})
    types = sorted(t for t in indicators_module.INDICATOR_OUTPUTS if t not in aliases)
    per_type: dict[str, float] = {}
    failed: dict[str, str] = {}
    for indicator_type in types:
        spec = IndicatorSpec(id=f"{indicator_type}_default", type=indicator_type, params={})
        compute = partial(indicators_module.compute_indicator, spec, bars)
        try:
            compute()  # also a warm-up
        except Exception as exc:  # an indicator being added right now may not work yet
            failed[indicator_type] = f"{type(exc).__name__}: {exc}"
            continue
        per_type[indicator_type] = _median_seconds(compute, repeats)
    all_s = sum(per_type.values())
    out: dict[str, Any] = {
        "preprocess_candles": candles,
        "preprocess_steps_1_6_s": steps_s,
        "preprocess_candles_per_s": candles / steps_s,
        "preprocess_indicators": len(per_type),
        "preprocess_indicator_aliases_skipped": len(indicators_module.INDICATOR_OUTPUTS)
        - len(types),
        "preprocess_indicators_s": all_s,
        "preprocess_candle_indicators_per_s": candles * len(per_type) / all_s if all_s else None,
        "preprocess_default_strategy_indicators": len(request.strategy.indicators),
        "preprocess_default_strategy_candle_indicators_per_s": candles
        * len(request.strategy.indicators)
        / default_s,
        "preprocess_indicator_s": {k: round(v, 5) for k, v in per_type.items()},
    }
    if failed:
        out["preprocess_indicators_failed"] = failed
    return out


# -- main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else "overhead")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs per run")
    parser.add_argument("--bars", type=int, default=20_000, help="synthetic bars for training")
    parser.add_argument(
        "--candles", type=int, default=None, help="candles for preprocessing (1M; quick 200k)"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (0: torch's default)"
    )
    args = parser.parse_args()
    quick: bool = args.quick
    repeats: int = args.repeats or (5 if quick else 31)
    epochs: int = args.epochs or (3 if quick else 6)
    candles: int = args.candles or (200_000 if quick else 1_000_000)
    if args.threads > 0:
        torch.set_num_threads(args.threads)  # see the module docstring

    torch.manual_seed(0)  # nothing below draws from it; set so stray use cannot vary
    request = _request(args.bars, epochs)
    data = training_data(request)
    with event_loop_thread() as loop:
        instrumented = Instrumented(request, data, loop)
        bare = Bare(request, data)
        inst_cpu, bare_cpu = CpuTimed(instrumented), CpuTimed(bare)
        samples = alternating({"instrumented": inst_cpu, "bare": bare_cpu}, repeats, warmup=WARMUP)
    inst_s, bare_s = samples["instrumented"], samples["bare"]
    inst_c, bare_c = inst_cpu.seconds[WARMUP:], bare_cpu.seconds[WARMUP:]
    spec = request.strategy.training
    n = len(data.y_train)
    n_batches = math.ceil(n / min(spec.batch_size, n))

    events = instrumented.event_counts()
    result = instrumented.last_result
    pre = preprocess_throughput(candles, repeats=1 if quick else 3)

    report(
        "overhead",
        {
            "quick": quick,
            "ratio": median(inst_s) / median(bare_s),
            "pair_ratio_median": median([a / b for a, b in zip(inst_s, bare_s, strict=True)]),
            "ratio_ci95": [round(v, 4) for v in ratio_ci95(inst_s, bare_s)],
            "min_ratio": min(inst_s) / min(bare_s),
            "instrumented_median_s": median(inst_s),
            "bare_median_s": median(bare_s),
            "instrumented_s": [round(t, 4) for t in inst_s],
            "bare_s": [round(t, 4) for t in bare_s],
            "cpu_ratio": median(inst_c) / median(bare_c),
            "cpu_ratio_ci95": [round(v, 4) for v in ratio_ci95(inst_c, bare_c)],
            "cpu_pair_ratio_median": median([a / b for a, b in zip(inst_c, bare_c, strict=True)]),
            "instrumented_cpu_median_s": median(inst_c),
            "bare_cpu_median_s": median(bare_c),
            "repeats": repeats,
            "epochs": epochs,
            "samples": n,
            "validation_samples": len(data.y_val),
            "features": int(data.x_train.shape[1]),
            "batch_size": spec.batch_size,
            "batches_per_epoch": n_batches,
            "training_bars": args.bars,
            "early_stopping_patience": spec.early_stopping_patience,
            "epochs_run": result.epochs_run if result else None,
            "kept_epoch": result.kept_epoch if result else None,
            "events_emitted": sum(events.values()),
            "events_by_kind": events,
            "weights_identical": same_weights(instrumented.final_state, bare.final_state),
            **pre,
        },
    )


if __name__ == "__main__":
    main()
