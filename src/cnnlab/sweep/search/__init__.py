"""Searches on Optuna: the ``search:``/``space:`` spec (``spec``), trials asked one by one
(``trials``), pruning inside a training run (``pruning``) and their figures.

May import: what ``sweep`` may, and ``sweep.spec``.
"""
