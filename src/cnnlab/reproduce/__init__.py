"""The reference study (``cnnlab reproduce``): the only place the reference report is
known: its numbers (``reference.yaml``, Table 1 in ``table1``), its claims and their
verdicts (``verdicts``), the study's sweeps (``study``) and its page (``page``).

May import: every other part.
"""
