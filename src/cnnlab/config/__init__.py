"""Experiment configs: value checks (``checks``), the dataclasses with each key defined
once (``schema``), and YAML files, ``--set`` and built-in names (``files``).

May import: :mod:`cnnlab.errors` only. Everything else imports configs from here.
"""
