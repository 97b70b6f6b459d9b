"""``python -m videomind``: the same command line as the ``videomind`` console script."""

import sys

from videomind.cli import main

if __name__ == "__main__":
    sys.exit(main())
