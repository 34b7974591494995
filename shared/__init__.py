"""trainwire: a gRPC training service for trading-strategy models."""

__version__ = "0.1.0"
