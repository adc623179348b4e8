"""Where the checkout is, for tests that load a script by path."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
