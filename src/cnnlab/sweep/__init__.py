"""Many runs: the sweep file and its expansion (``spec``), the runner that trains what is
pending through an executor (``runner``, ``executors``, ``capacity``, ``ray``), results,
statistics and findings (``results``, ``stats``, ``findings``), figures, HParams,
``compare``, and searches on Optuna (``search/``). ``run.run_sweep`` ties them together.

May import: ``config``, ``backend``, ``data``, ``runs``, ``training``, ``report``,
``errors``. Knows nothing of the reference report: its outputs come in as ``extra``.
"""
