"""The study's sweeps by name: the built-in sweep files it runs, and the best model's;
and the most seeds an arm of the study gets (imports nothing: the help reads it).

Each name is also the sweep's folder under the study's folder."""

BATCH_SIZE = "batch-size"
OPTIMIZER = "optimizer"
DEPTH = "depth"
GRID = "grid"
REGULARIZATION = "regularization"
STUDY_SWEEPS = (BATCH_SIZE, OPTIMIZER, DEPTH, GRID, REGULARIZATION)
BEST = "best-model"  # the best model trained alone: the class claims' runs
TIMED_SWEEP = BATCH_SIZE  # its claims and Table 1 are step times: all-cores runs alone
# With a budget, the budget rather than the maximum should end an open claim's seeds: a
# 1-point difference needs about 15 paired seeds (docs/reproduce.md).
MAX_REPEATS = 20
