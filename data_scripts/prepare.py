"""Download (if needed), verify, extract and write a dataset's AST datafiles.

Usage: python data_scripts/prepare.py NAME [--synthetic] [--size smoke|small|medium]
       [--root DIR] [--url URL] [--seed N]
Same code as `ast-repro data NAME --step prepare`.
"""

import sys

from ast_repro.cli import main

if __name__ == "__main__":
    sys.exit(main(["data", *sys.argv[1:], "--step", "prepare"]))
