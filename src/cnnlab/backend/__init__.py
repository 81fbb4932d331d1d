"""TensorFlow's process: CPU settings (oneDNN, threads) chosen before its import
(``runtime``) and the one place TensorFlow and Keras are imported (``tf``).

May import: ``config``, ``errors``.
"""
