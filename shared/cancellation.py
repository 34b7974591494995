"""Cooperative cancellation shared by the pipeline and the services.

The token is a ``threading.Event``: ``cancel()`` may be called from any thread (an event loop
handling a ``Cancel`` RPC), ``raise_if_cancelled()`` is checked by the training thread at every
batch and between steps.
"""

from __future__ import annotations

import threading


class CancelledError(Exception):
    """Raised inside the pipeline when its token was cancelled."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CancellationToken:
    __slots__ = ("_event", "_reason")

    def __init__(self) -> None:
        self._event = threading.Event()
        self._reason = ""

    def cancel(self, reason: str = "cancelled") -> None:
        if not self._event.is_set():
            self._reason = reason or "cancelled"
            self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    @property
    def reason(self) -> str:
        return self._reason

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise CancelledError(self._reason)

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)
