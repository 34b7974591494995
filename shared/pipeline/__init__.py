"""The training pipeline: pure, synchronous work shared by every trainer; no gRPC here.

Entry point: ``shared.pipeline.run.run_training``. Request validation (used by the orchestrator
before it queues a job, too): ``validate_request``. Indicator catalogue: ``INDICATOR_OUTPUTS``.
"""

from shared.pipeline.indicators import INDICATOR_OUTPUTS
from shared.pipeline.validation import validate_request

__all__ = ["INDICATOR_OUTPUTS", "validate_request"]
