"""Seeds per arm with adaptive seeds (``--repeats auto``): the defaults, defined once.

Imports nothing: the command line's help reads them without loading the statistics."""

MIN_REPEATS = 3  # every arm starts with this many seeds
MAX_REPEATS = 10  # an undecided arm gets at most this many (cnnlab sweep)
