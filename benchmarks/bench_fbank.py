"""Feature-extraction benchmark; the code is `ast_repro.bench` (also `ast-repro bench`)."""

import sys

from ast_repro.bench import main

if __name__ == "__main__":
    sys.exit(main())
