"""Process helpers for the tests: the ones ``trainwire demo`` uses too live in
``services.processes``; tests import them from here."""

from __future__ import annotations

from services.processes import free_port, service, wait_serving

__all__ = ["free_port", "service", "wait_serving"]
