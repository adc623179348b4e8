"""Replace the live towns layer with a GIS file (see docs/importing.md)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from portal.import_report import import_command  # noqa: E402

main = import_command("towns")

if __name__ == "__main__":
    main()
