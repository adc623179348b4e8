"""Replace the live coverage layer with a GIS file (see docs/importing.md)."""
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

from import_layer import import_command

main = import_command("coverage")

if __name__ == "__main__":
    main()
