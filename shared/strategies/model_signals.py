"""A trained model as a strategy: its predicted classes on the bars become signals.

Classifiers predict one class per bar from ``shared.pipeline.labels.CLASSES`` (SELL, HOLD, BUY;
``Predictor.signals`` gives them by name, the model's outputs by index into its class names).
BUY means long (+1), SELL short (-1), HOLD flat (0); a bar without a prediction (warm-up) is
flat. ``signals_from_classes`` takes the classes as indices into ``class_names`` or as the names
themselves.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from shared.errors import InvalidArgumentError
from shared.pipeline.labels import CLASSES

DIRECTIONS: dict[str, int] = {"SELL": -1, "HOLD": 0, "BUY": 1}
"""Class name -> the position it asks for."""

assert set(DIRECTIONS) == set(CLASSES), "every label class needs a direction"


def signals_from_classes(
    classes: npt.ArrayLike, class_names: Sequence[str] = CLASSES
) -> npt.NDArray[np.int8]:
    """int8 signals (-1/0/+1), one per entry of ``classes``.

    ``classes``: class indices into ``class_names`` (ints; a negative index means no
    prediction, flat) or class names (str). Names outside SELL/HOLD/BUY, or an index past
    ``class_names``, raise ``InvalidArgumentError`` (field ``classes``).
    """
    unknown = [name for name in class_names if name not in DIRECTIONS]
    if unknown:
        raise InvalidArgumentError(
            f"class {unknown[0]!r} has no trading direction; classes are {', '.join(DIRECTIONS)}",
            field="class_names",
        )
    values = np.asarray(classes)
    if values.dtype.kind in "OUS":
        names = list(class_names)
        lookup = {name: i for i, name in enumerate(names)}
        bad = [v for v in values.tolist() if v not in lookup]
        if bad:
            raise InvalidArgumentError(
                f"predicted class {bad[0]!r} is not one of {', '.join(names)}", field="classes"
            )
        values = np.array([lookup[v] for v in values.tolist()], dtype=np.int64)
    if values.dtype.kind not in "iu":
        raise InvalidArgumentError(
            f"classes are class indices (ints) or names, not {values.dtype}", field="classes"
        )
    values = values.astype(np.int64)
    if values.size and values.max() >= len(class_names):
        raise InvalidArgumentError(
            f"class index {int(values.max())} is past the {len(class_names)} class names",
            field="classes",
        )
    table = np.array([DIRECTIONS[name] for name in class_names] + [0], dtype=np.int8)
    return table[np.where(values < 0, len(class_names), values)]
