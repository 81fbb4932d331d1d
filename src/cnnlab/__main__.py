"""``python -m cnnlab``: the same as the ``cnnlab`` command."""

from cnnlab.cli import main

if __name__ == "__main__":
    main()
