"""Pictures and pages of finished folders: matplotlib figures (``figures``), a run's
figures and page (``run_report``), HTML pages of runs and sweeps (``pages``) and
activation maps (``activations``). Never trains.

May import: ``runs``, ``inference``, ``config``, ``errors``.
"""
