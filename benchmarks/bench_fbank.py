"""Feature-extraction benchmark: the same code as `ast-repro bench` (`ast_repro.bench`)."""

import sys

from ast_repro.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
