"""Waiting for the signal that stops a service (SIGTERM from Docker or systemd, Ctrl-C)."""

from __future__ import annotations

import asyncio
import signal


async def until_stop_signal() -> None:
    """Return once SIGTERM or SIGINT arrives (the handlers stay for a second signal)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
