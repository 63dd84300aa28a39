"""PyInstaller's entry script for the bundle: the same command line as `python -m cadence`."""

import multiprocessing
import sys

if __name__ == "__main__":
    # The inbox classifier runs in a "spawn" worker process; in a frozen build that child is this executable
    # again, and freeze_support() turns it into the worker instead of a second Cadence.
    multiprocessing.freeze_support()
    from cadence.cli import main

    sys.exit(main())
