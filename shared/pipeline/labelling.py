"""Step 5 of a run: labels on the base timeframe's closes, the threshold calibrated when asked.

The training rows are known before any label exists: a row is usable when its features are
known (past the indicator warm-up) and it can have a label (not one of the last ``lookahead``
bars), whatever the threshold, and the split (``shared.pipeline.features.split_rows``) is
chronological per symbol over the usable rows. So this step finds the very rows step 7 trains
on, and:

- computes every bar's swing size (``shared.pipeline.labels.swing_sizes``) and, from the
  training rows of every symbol together, the threshold that labels about
  ``AUTO_MOVE_SHARE`` of them BUY or SELL — the *suggested* threshold. A training row's swing
  looks at most ``lookahead`` bars ahead, into the purged gap before the validation rows, never
  into validation or test;
- with ``LabelSpec.auto_threshold``, labels at that threshold and says so in the step's first
  event and the log (``Calibrated zigzag threshold 0.00213 ...``);
- otherwise labels at ``LabelSpec.threshold``.

``LabelReport`` records what was decided; the run checks the classes of every split after the
split and quotes the suggestion when one is (nearly) absent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped, unused-ignore]

from shared.pipeline.features import Dataset, Segment, SymbolFrame, split_rows
from shared.pipeline.job import TrainingJob
from shared.pipeline.labels import (
    AUTO_MOVE_SHARE,
    LabelReport,
    make_labels,
    swing_sizes,
    threshold_for_share,
)
from shared.pipeline.market import DataError
from shared.progress.tracker import TrainingStep

__all__ = ["Labelled", "label_symbols", "training_positions"]

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class Labelled:
    frames: list[SymbolFrame]
    report: LabelReport


def training_positions(
    job: TrainingJob, features: Mapping[str, pd.DataFrame]
) -> dict[str, npt.NDArray[np.int64]]:
    """Per symbol, the positions (in its base-timeframe bars) of the rows step 7 trains on.

    Empty for every symbol when some symbol has no usable row at all (step 6 then refuses the
    data, saying why)."""
    lookahead = job.request.strategy.labels.lookahead
    training = job.request.strategy.training
    usable: dict[str, npt.NDArray[np.int64]] = {}
    segments: list[Segment] = []
    offset = 0
    for symbol in job.request.symbols:
        frame = features[symbol]
        known = frame.notna().all(axis=1).to_numpy(dtype=np.bool_, copy=True)
        known[max(0, len(known) - lookahead) :] = False  # the last lookahead bars get no label
        rows = np.flatnonzero(known).astype(np.int64)
        if rows.size == 0:
            return {s: np.empty(0, dtype=np.int64) for s in job.request.symbols}
        usable[symbol] = rows
        index = frame.index[rows]
        segments.append(Segment(symbol, offset, offset + rows.size, index[0], index[-1]))
        offset += rows.size
    shell = Dataset(
        features=np.empty((0, 0)),
        labels=np.empty(0, dtype=np.int64),
        feature_names=(),
        segments=tuple(segments),
    )
    train, _, _ = split_rows(shell, training.validation_split, training.test_split, lookahead)
    out: dict[str, npt.NDArray[np.int64]] = {}
    for seg in segments:
        mine = train[(train >= seg.start) & (train < seg.stop)] - seg.start
        out[seg.symbol] = usable[seg.symbol][mine]
    return out


def label_symbols(
    job: TrainingJob,
    bars: Mapping[tuple[str, str], pd.DataFrame],
    features: Mapping[str, pd.DataFrame],
) -> Labelled:
    """Step 5: every symbol's labels on its base timeframe, and the report of how.

    ``bars`` maps (symbol, timeframe) to OHLCV frames, ``features`` each symbol's feature
    frame on its base-timeframe bars (NaN in the warm-up). Raises ``DataError`` when a
    calibration was asked for and the training prices never move.
    """
    request = job.request
    spec = request.strategy.labels
    base_tf = request.timeframes[0]
    with job.step(TrainingStep.LABELS):
        closes = {
            s: bars[(s, base_tf)]["close"].to_numpy(dtype=np.float64) for s in request.symbols
        }
        positions = training_positions(job, features)
        swings = [
            swing_sizes(closes[s], spec.lookahead, spec.method)[positions[s]]
            for s in request.symbols
        ]
        training_rows = sum(len(p) for p in positions.values())
        suggested = threshold_for_share(np.concatenate(swings)) if training_rows else None
        threshold = spec.threshold
        if spec.auto_threshold:
            if suggested is None:
                raise DataError(
                    "",
                    base_tf,
                    f"cannot calibrate the label threshold: the close never moves within "
                    f"{spec.lookahead} bars over the {training_rows} training rows",
                )
            threshold = suggested
            message = (
                f"Calibrated {spec.method.value} threshold {threshold:g} from {training_rows:,} "
                f"training rows: about {AUTO_MOVE_SHARE:.0%} of them move at least that much "
                f"within {spec.lookahead} bars (BUY or SELL)"
            )
            _LOGGER.info("%s", message)
            job.tracker.detail(0.0, message=message)
        frames: list[SymbolFrame] = []
        items = job.items("symbols", len(request.symbols))
        for si, symbol in enumerate(request.symbols):
            items.next(job.context(si, 0, "Labelling"))
            labels = make_labels(spec, closes[symbol], threshold=threshold)
            frames.append(SymbolFrame(symbol, features[symbol], labels))
    report = LabelReport(
        method=spec.method.value,
        lookahead=spec.lookahead,
        threshold=threshold,
        requested_threshold=spec.threshold,
        calibrated=spec.auto_threshold,
        suggested_threshold=suggested,
        training_rows=training_rows,
    )
    return Labelled(frames, report)
