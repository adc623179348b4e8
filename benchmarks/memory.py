"""Memory of a worker as the coverage layer grows: resident, peak and bytes per vertex.

    python -m benchmarks.memory            # 10,000, 100,000 and 300,000 polygons (~110 vertices each)
    python -m benchmarks.memory --small    # tiny sizes, in seconds (make test)

Each size is generated (``datagen``, 1,000 towns) and imported through the staff import path.
Then a fresh process loads the portal and does what the gunicorn master does before it forks
(``portal.web.caching.warm``: the live snapshot, every town's shares, one point answer), and
reports its resident memory (VmRSS) after the build and its peak (VmHWM) from
``/proc/self/status``. Bytes per vertex are counted from the resident memory of the same
process once the portal and its compiled searches are loaded, before any layer is read.
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SIZES = (10_000, 100_000, 300_000)
SMALL_SIZES = (300, 1_000, 3_000)
# Vertices per polygon times datagen's default: 100,000 polygons then hold ~11 million vertices.
DETAIL = 1.52
MIB = 1024 * 1024


def _status(field: str) -> int:
    """Return one memory field of /proc/self/status in bytes."""
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1)) * 1024


def _trim() -> None:
    """Collect garbage and give freed heap back to the system, so resident memory is what is held."""
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _load_compiled() -> None:
    """Load the portal's compiled searches on two hand-made squares, so the baseline includes them."""
    import shapely

    from portal.coverage.index import CoverageIndex
    from portal.data.layers import Area, Town

    square = shapely.box(28.0, 57.0, 28.01, 57.01)
    town = Town("t", "T", None, None, 57.005, 28.005, shapely.box(28.0, 57.0, 28.02, 57.02))
    index = CoverageIndex([Area("fiber", "live", square)], [town])
    index.point_answer(57.005, 28.005)
    index.point_answer(56.0, 27.0)
    index.all_town_summaries()


def child(db_path: str) -> dict:
    """Build the live snapshot as a gunicorn master does; return memory and time (in this process)."""
    from portal import create_app

    app = create_app({"DATABASE": db_path})
    _load_compiled()
    _trim()
    base = _status("VmRSS")
    t0 = time.perf_counter()
    app.extensions["portal_warm"]()
    built_s = time.perf_counter() - t0
    _trim()
    return {"baseline_rss": base, "rss": _status("VmRSS"), "peak": _status("VmHWM"), "build_s": built_s}


def measure(db_path: Path) -> dict:
    """Run ``child`` in a fresh interpreter (its peak is its own) and return what it reports."""
    out = subprocess.run([sys.executable, "-m", "benchmarks.memory", "--child", str(db_path)],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def run(small: bool = False, sizes=None, say=print) -> list[dict]:
    """Generate, import and measure each size; print one line per size and return the figures."""
    from benchmarks import datagen

    towns = 50 if small else 1_000
    # Compile (or load) the searches once first, so that no measured process compiles them.
    subprocess.run([sys.executable, "-c", "from benchmarks.memory import _load_compiled; _load_compiled()"],
                   cwd=ROOT, check=True)
    rows = []
    for polygons in sizes or (SMALL_SIZES if small else SIZES):
        with tempfile.TemporaryDirectory(prefix="portal-memory-") as tmp:
            folder = Path(tmp)
            scale = datagen.Scale(towns=towns, polygons=polygons, incidents=0, points=1)
            data = datagen.write_files(folder / "files", scale, detail=DETAIL)
            del data["coverage"]
            t0 = time.perf_counter()
            datagen.import_files(folder / "portal.sqlite", folder / "files")
            import_s = time.perf_counter() - t0
            got = measure(folder / "portal.sqlite")
        vertices = data["vertices"]
        row = {
            "polygons": polygons, "vertices": vertices, "import_s": round(import_s, 1),
            "build_s": round(got["build_s"], 1),
            "rss_mib": round(got["rss"] / MIB), "peak_mib": round(got["peak"] / MIB),
            "baseline_mib": round(got["baseline_rss"] / MIB),
            "bytes_per_vertex": round((got["rss"] - got["baseline_rss"]) / vertices, 1),
            "peak_bytes_per_vertex": round((got["peak"] - got["baseline_rss"]) / vertices, 1),
        }
        rows.append(row)
        say(f"  {polygons:,} polygons, {vertices:,} vertices: resident {row['rss_mib']} MiB, peak"
            f" {row['peak_mib']} MiB (portal loaded: {row['baseline_mib']} MiB); per vertex"
            f" {row['bytes_per_vertex']} B resident, {row['peak_bytes_per_vertex']} B at peak;"
            f" import {row['import_s']} s, build {row['build_s']} s")
    return rows


def main(argv=None) -> int:
    """Measure every size and print the figures (or, with --child, measure one build)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny sizes (CI)")
    parser.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",")],
                        help="polygon counts, comma-separated (default 10000,100000,300000)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child)))
        return 0
    rows = run(args.small, args.sizes, say=lambda text: print(text, flush=True))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
