"""Provider-scale benchmark: point answers in-process and from PostGIS, HTTP load, page sizes, memory,
notification fan-out (benchmarks/fanout.py), crowd reports (benchmarks/reports.py), the reads, reports
and fan-out on both engines side by side (benchmarks/engines.py).

    python -m benchmarks.bench            # 1,000 towns, 100,000 polygons, 10,000 incidents, 1M points
    python -m benchmarks.bench --small    # the same steps on little data, in under a minute (CI)

It prints figures (and with ``--json FILE`` writes them), then the floors below and whether
this run met them; it fails on none of them (a shared machine can be slow for a while). Only
correctness stops a run: PostGIS and the portal must find the same covering areas.
"""
from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import shapely

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import datagen, engines, fanout, load, memory, pg, reports  # noqa: E402
from portal import answers, create_app  # noqa: E402
from portal.coverage import snapshot as state  # noqa: E402
from portal.coverage.locate import PolygonIndex  # noqa: E402
from portal.data import db  # noqa: E402

# What the portal must keep doing on the benchmark's data (docs/performance.md).
FLOORS = {
    "check_vs_bare": 0.6,  # /api/v1/check at least 0.6 x the bare Flask endpoint's requests/s
    "check_p99_ms": 50.0,  # /api/v1/check's p99 at 32 connections, at most
    "point_answer_median_us": 150.0,  # the full point answer in-process, median, at most
}


def floors(figures: dict) -> list[dict]:
    """Return each floor with this run's figure and whether it was met."""
    found = {"check_vs_bare": figures["http"]["check_vs_bare"],
             "check_p99_ms": figures["http"]["check"]["p99_ms"],
             "point_answer_median_us": figures["in_process"]["median_us"]}
    out = []
    for name, floor in FLOORS.items():
        value = found[name]
        met = value >= floor if name == "check_vs_bare" else value <= floor
        out.append({"name": name, "value": value, "floor": floor, "met": met})
    return out


def _stats(ns: np.ndarray) -> dict:
    """Return median and p99 in microseconds and the rate of a set of timings."""
    return {"median_us": round(float(np.median(ns)) / 1000, 1),
            "p99_us": round(float(np.percentile(ns, 99)) / 1000, 1),
            "per_s": round(len(ns) / (ns.sum() / 1e9))}


def say(text: str) -> None:
    """Print a progress line at once."""
    print(text, flush=True)


def build(folder: Path, scale: datagen.Scale) -> tuple[Path, dict, dict]:
    """Generate the files, import them and write incidents; return the DB, data and timings."""
    t0 = time.perf_counter()
    data = datagen.write_files(folder / "files", scale)
    timings = {"generate_s": round(time.perf_counter() - t0, 1)}
    say(f"  generated {scale.towns} towns, {scale.polygons} polygons ({data['vertices']} vertices),"
        f" {scale.points} points in {timings['generate_s']} s")
    db_path = folder / "portal.sqlite"
    imported = datagen.import_files(db_path, folder / "files")
    timings.update({f"import_{k}_s": round(v, 1) for k, v in imported.items()})
    say(f"  imported towns in {imported['towns']:.1f} s, {scale.polygons} polygons in {imported['coverage']:.1f} s")
    t0 = time.perf_counter()
    datagen.write_incidents(db_path, data["towns"], scale.incidents)
    timings["incidents_s"] = round(time.perf_counter() - t0, 1)
    say(f"  wrote {scale.incidents} incidents in {timings['incidents_s']} s")
    return db_path, data, timings


def in_process(db_path: Path, points: np.ndarray) -> tuple[dict, state.Snapshot]:
    """Time the full point answer (coverage, town, nearest, incidents) as /api/v1/check computes it."""
    conn = db.connect_readonly(db_path)
    t0 = time.perf_counter()
    snap = state.snapshot(conn, str(db_path), 150)
    built = time.perf_counter() - t0
    now = db.utcnow()
    answers.check_point(snap, *points[0], now)  # the first answer loads the compiled searches
    clock = time.perf_counter_ns
    ns = np.empty(len(points), dtype=np.int64)
    t0 = time.perf_counter()
    for k, (lat, lon) in enumerate(points.tolist()):
        t = clock()
        answers.check_point(snap, lat, lon, now)
        ns[k] = clock() - t
    wall = time.perf_counter() - t0
    conn.close()
    out = {"index_build_s": round(built, 1), **_stats(ns), "bulk_points_per_s": round(len(points) / wall)}
    say(f"  full point answer: median {out['median_us']} µs, p99 {out['p99_us']} µs,"
        f" {out['bulk_points_per_s']} points/s over {len(points)} points (index built in {out['index_build_s']} s)")
    return out, snap


def versus_postgis(snap: state.Snapshot, points: np.ndarray, full_median_us: float) -> dict:
    """Ask PostGIS, the portal's point grid and a GEOS STRtree which areas cover each point; compare."""
    missing = pg.available()
    if missing:
        raise SystemExit(f"PostGIS comparison impossible: {missing}")
    geoms = np.array([a.geometry for a in snap.coverage.areas_in_bbox(None)], dtype=object)
    grid = PolygonIndex(geoms)
    tree = shapely.STRtree(geoms)
    shapely.prepare(geoms)
    clock = time.perf_counter_ns
    grid_ns = np.empty(len(points), dtype=np.int64)
    tree_ns = np.empty(len(points), dtype=np.int64)
    ours, geos = [], []
    for k, (lat, lon) in enumerate(points.tolist()):
        t = clock()
        found = grid.containing(lon, lat)
        grid_ns[k] = clock() - t
        ours.append(found)
        t = clock()
        found = tree.query(shapely.points([(lon, lat)]), predicate="intersects")[1]
        tree_ns[k] = clock() - t
        geos.append(sorted(found.tolist()))
    with pg.cluster() as dsn:
        load_s = pg.load(dsn, geoms)
        pg_ns, theirs = pg.time_points(dsn, points)
    mismatches = sum(a != b for a, b in zip(ours, theirs))
    geos_mismatches = sum(a != b for a, b in zip(geos, theirs))
    out = {"points": len(points), "postgis_load_s": round(load_s, 1), "postgis": _stats(pg_ns),
           "grid": _stats(grid_ns), "strtree": _stats(tree_ns), "mismatches": mismatches,
           "strtree_mismatches": geos_mismatches}
    out["ratio_postgis_to_grid"] = round(out["postgis"]["median_us"] / out["grid"]["median_us"], 1)
    out["ratio_postgis_to_strtree"] = round(out["postgis"]["median_us"] / out["strtree"]["median_us"], 1)
    out["ratio_postgis_to_full_answer"] = round(out["postgis"]["median_us"] / full_median_us, 2)
    say(f"  PostGIS 'which areas cover it': median {out['postgis']['median_us']} µs, p99"
        f" {out['postgis']['p99_us']} µs; the portal's grid {out['grid']['median_us']} µs"
        f" ({out['ratio_postgis_to_grid']}x faster), a GEOS STRtree {out['strtree']['median_us']} µs;"
        f" the full answer is {out['ratio_postgis_to_full_answer']}x faster than PostGIS's partial one;"
        f" {mismatches} disagreements ({geos_mismatches} for the STRtree)")
    if mismatches or geos_mismatches:
        raise SystemExit(f"PostGIS and the portal disagree on {mismatches} points"
                         f" ({geos_mismatches} for the STRtree)")
    return out


def page_sizes(db_path: Path, slugs: list[str]) -> dict:
    """Return raw and gzip bytes of the heaviest town page and the /towns overview."""
    app = create_app({"DATABASE": str(db_path)})
    client = app.test_client()
    sizes = {}
    for slug in slugs:
        r = client.get(f"/towns/{slug}", headers={"Accept-Language": "ru"})
        assert r.status_code == 200, (slug, r.status_code)
        sizes[slug] = r.data
    heaviest = max(sizes, key=lambda s: len(sizes[s]))
    t0 = time.perf_counter()
    overview = client.get("/towns", headers={"Accept-Language": "ru"})
    overview_ms = (time.perf_counter() - t0) * 1000
    assert overview.status_code == 200
    out = {"heaviest_town": heaviest, "town_html_bytes": len(sizes[heaviest]),
           "town_gzip_bytes": len(gzip.compress(sizes[heaviest])),
           "towns_html_bytes": len(overview.data), "towns_gzip_bytes": len(gzip.compress(overview.data)),
           "towns_render_ms": round(overview_ms)}
    say(f"  heaviest town page /towns/{heaviest}: {out['town_html_bytes']} B ({out['town_gzip_bytes']} B gzip);"
        f" /towns: {out['towns_html_bytes']} B ({out['towns_gzip_bytes']} B gzip)")
    return out


def http(db_path: Path, points: np.ndarray, towns: list[str], seconds: float, workers: int,
         worker_class: str = "sync", threads: int = 1) -> dict:
    """Load /api/v1/check, /api/v1/status and a bare endpoint under gunicorn; then nginx in front.

    The three take turns in short runs of a few whole seconds each (wrk counts whole
    seconds), so that a slow spell of a shared machine falls on all of them and not on one:
    the ratios compare like with like.
    """
    rounds = max(1, min(5, int(seconds) // 3))
    each = max(1, round(seconds / rounds))
    paths = [f"/api/v1/check?lat={lat}&lon={lon}" for lat, lon in points.tolist()]
    status_paths = [f"/api/v1/status?lat={lat}&lon={lon}" for lat, lon in points.tolist()]
    out = {"workers": workers, "worker_class": worker_class, "threads": threads, "seconds": seconds,
           "connections": 32, "rounds": rounds}
    settings = {"workers": workers, "worker_class": worker_class, "threads": threads}
    runs: dict[str, list[dict]] = {"bare": [], "check": [], "status": []}
    with load.gunicorn("benchmarks.bare_app:app", None, probe="/bare", **settings) as (bare, _bare_pid), \
            load.gunicorn("wsgi:app", db_path, probe="/api/v1/summary", **settings) as (base, pid):
        for _ in range(rounds):
            runs["bare"].append(load.wrk(bare, ["/bare"], each))
            runs["check"].append(load.wrk(base, paths, each))
            runs["status"].append(load.wrk(base, status_paths, each))
        for name, label in (("bare", "bare Flask"), ("check", "/api/v1/check"), ("status", "/api/v1/status")):
            out[name] = load.combine(runs[name])
            say(f"  {label}: {out[name]}")
        out["memory"] = load.worker_memory(pid)
        say(f"  memory: {out['memory']}")
        port = int(base.rsplit(":", 1)[1])
        with load.nginx(port) as (front, log):
            spike = [f"/api/v1/status?town={slug}" for slug in towns]
            out["nginx_status_town"] = load.wrk(front, spike, seconds)
            time.sleep(1.2)  # the access log is flushed every second
            out["nginx_cache"] = load.cache_statuses(log)
            say(f"  nginx, /api/v1/status?town= x{len(towns)} towns: {out['nginx_status_town']};"
                f" cache {out['nginx_cache']}")
            # The spike's p99 above is its first moments: requests that arrive while an answer is
            # being fetched wait on nginx's cache lock, which looks again every 500 ms. Once
            # every answer is cached (the steady state of a spike) the wait is gone:
            out["nginx_status_town_cached"] = load.wrk(front, spike, each)
            say(f"  nginx, the same with every answer cached: {out['nginx_status_town_cached']}")
    out["check_vs_bare"] = round(out["check"]["rps"] / out["bare"]["rps"], 2)
    out["status_vs_bare"] = round(out["status"]["rps"] / out["bare"]["rps"], 2)
    # Each round's own ratio too: how much the figure above moves with the machine's mood.
    out["check_vs_bare_rounds"] = [round(c["rps"] / b["rps"], 2) for c, b in zip(runs["check"], runs["bare"])]
    say(f"  /api/v1/check ÷ bare: {out['check_vs_bare']} (rounds: {out['check_vs_bare_rounds']}),"
        f" /api/v1/status ÷ bare: {out['status_vs_bare']}")
    return out


def main(argv=None) -> int:
    """Run every step and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="little data and 4 s of load (CI)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--postgis-points", type=int, help="points asked of PostGIS (default: 100,000; small: all)")
    parser.add_argument("--seconds", type=float, help="seconds of load per target, taken in turns (default 20; small 4)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--worker-class", default="sync", help="gunicorn worker class (default sync)")
    parser.add_argument("--threads", type=int, default=1, help="threads per gthread worker")
    parser.add_argument("--points", type=int, help="points timed in-process (default: all generated)")
    parser.add_argument("--subscribers", type=int,
                        help="confirmed subscribers in the outage town (default 100,000; small 2,000)")
    args = parser.parse_args(argv)
    scale = datagen.SMALL if args.small else datagen.FULL
    seconds = args.seconds or (4 if args.small else 20)
    pg_points = args.postgis_points or (2_000 if args.small else 100_000)
    figures: dict = {"scale": scale.__dict__}
    with tempfile.TemporaryDirectory(prefix="portal-bench-") as tmp:
        folder = Path(tmp)
        say("data")
        db_path, data, figures["build"] = build(folder, scale)
        points = data["points"]
        say("in-process")
        figures["in_process"], snap = in_process(db_path, points[:args.points] if args.points else points)
        figures["postgis"] = versus_postgis(snap, points[:pg_points], figures["in_process"]["median_us"])
        say("pages")
        heavy = datagen.heaviest_towns(data["towns"], data["coverage"], count=10)
        figures["pages"] = page_sizes(db_path, heavy)
        say("http")
        figures["http"] = http(db_path, points[:10_000], heavy, seconds, args.workers, args.worker_class,
                               args.threads)
        say("notification fan-out (real SMTP server, worker process)")
        figures["fanout"] = fanout.run(folder, args.subscribers or (2_000 if args.small else 100_000), say=say)
        say("crowd reports (accepted per second while reads go on; a simulated outage replayed)")
        figures["reports"] = reports.run(folder, int(seconds), args.workers, say=say)
        if pg.available() is None:
            say("both engines side by side (SQLite; PostgreSQL + PostGIS with Redis), the demo data")
            (folder / "engines").mkdir()
            figures["engines"] = engines.run(folder / "engines", int(seconds),
                                             args.subscribers or (2_000 if args.small else 100_000), say=say)
    say("memory as the layer grows")
    figures["memory"] = memory.run(args.small, say=say)
    figures["floors"] = floors(figures)
    say(json.dumps(figures, indent=1))
    say("floors")
    for row in figures["floors"]:
        bound = ">=" if row["name"] == "check_vs_bare" else "<="
        verdict = "met" if row["met"] else "NOT MET"
        say(f"  {row['name']}: {row['value']} (floor {bound} {row['floor']}): {verdict}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
