"""Run and sweep folders on disk: the vocabulary of file names, statuses and metrics with
their direction (``layout``, imports nothing), writing folders and files atomically
(``storage``), and reading a finished run back with its model and data (``load``).

May import: ``config``, ``data``, ``backend`` (to load a model), ``errors``.
"""
