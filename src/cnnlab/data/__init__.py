"""Images in: safe decoding of image files and archives (``readers``); CIFAR-10 lookup,
split, per-image standardization, the cache and the data record (``dataset``).

May import: ``config``, ``backend``, ``errors``.
"""
