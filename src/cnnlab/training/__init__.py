"""One run, top to bottom (``loop``): model, optimizer and schedule, graph batches,
timing, tracking, over-fitting analysis, then the run folder's record. Never draws: the
caller hands it a ``draw`` function (the report part's).

May import: ``config``, ``backend``, ``data``, ``runs``, ``errors``.
"""
