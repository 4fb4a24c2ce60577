"""Generate a dataset's offline synthetic twin (archive or csvs + audio) under ROOT/twin/.

Usage: python data_scripts/synthesize.py NAME [--size smoke|small|medium] [--seed N] [--root DIR]
Same code as `ast-repro data NAME --synthetic --step synthesize`.
"""

import sys

from ast_repro.cli import main

if __name__ == "__main__":
    sys.exit(main(["data", *sys.argv[1:], "--synthetic", "--step", "synthesize"]))
