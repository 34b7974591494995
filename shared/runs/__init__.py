"""The runners of the job kinds beside training: what a trainer runs for a backtest or an
optimization request, pure and synchronous like ``shared.pipeline.run`` (training's runner).

Each runner takes its request, a ``ProgressSink`` and a ``CancellationToken``, loads the bars
the way training does (``shared.pipeline.preprocess.load_data``: directory, uploaded dataset or
synthetic market, with the same provenance and warnings), reports weighted steps through a
``ProgressTracker`` and returns the kind's result dataclass (``shared.results``).
"""
