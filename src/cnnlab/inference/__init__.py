"""Using a finished model: ``predict`` on your images, ``export`` to SavedModel/TFLite and
the activation maps' numbers (``activations``; drawn by ``report``).

May import: ``config``, ``backend``, ``data``, ``runs``, ``errors``.
"""
