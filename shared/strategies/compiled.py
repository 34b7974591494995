"""numba compilation with an on-disk cache where one can be written.

``compiled(fn)`` is ``numba.njit(cache=True)(fn)``: numba keeps the machine code beside the
module when its ``__pycache__`` is writable, else in its per-user cache directory
(``NUMBA_CACHE_DIR`` overrides both). Where no location is writable at all (a read-only
install and home), numba would refuse at import; then the function is compiled without a cache,
once per process. The backtest loop and the strategies' state machine both use it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba

_LOGGER = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


def compiled(fn: F) -> F:
    """``fn`` compiled in nopython mode, cached on disk when possible."""
    try:
        return cast(F, numba.njit(cache=True)(fn))
    except RuntimeError as exc:  # "cannot cache function ...: no locator available"
        _LOGGER.warning("compiling %s without an on-disk cache: %s", fn.__qualname__, exc)
        return cast(F, numba.njit(fn))
