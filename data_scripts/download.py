"""Download a dataset's archive (or AudioSet's csvs) without preparing it.

Usage: python data_scripts/download.py NAME [--root DIR] [--url URL]
Same code as `ast-repro data NAME --step download`.
"""

import sys

from ast_repro.cli import main

if __name__ == "__main__":
    sys.exit(main(["data", *sys.argv[1:], "--step", "download"]))
