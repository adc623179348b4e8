"""PostgreSQL + PostGIS for comparison: a throwaway cluster on a Unix socket in a temp folder."""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import shapely

QUERY = ("SELECT id FROM coverage WHERE ST_Intersects(geom, ST_SetSRID(ST_MakePoint(%s::float8, %s::float8), 4326))")


def _bindir() -> Path:
    """Return the newest Debian PostgreSQL server binaries folder."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("PostgreSQL server not installed (Debian: postgresql postgis)")
    return Path(found[-1]).parent


def _as_postgres(cmd: list[str]) -> list[str]:
    """Run as the postgres user when we are root (initdb refuses root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + cmd
    return cmd


@contextmanager
def cluster():
    """Start a private cluster in a temp folder, listening only on a socket there; yield a DSN."""
    folder = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    data, sock = folder / "data", folder / "sock"
    sock.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        uid = pwd.getpwnam("postgres").pw_uid
        for p in (folder, sock):
            os.chown(p, uid, -1)
    bindir = _bindir()
    subprocess.run(_as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", "bench", "--auth=trust",
                                 "-E", "UTF8", "--no-sync"]), check=True, capture_output=True)
    opts = f"-k {sock} -c listen_addresses='' -c fsync=off -c shared_buffers=256MB -c jit=off"
    subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l",
                                 str(folder / "log"), "-w", "start"]), check=True, capture_output=True)
    try:
        yield f"host={sock} dbname=postgres user=bench"
    finally:
        subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def load(dsn: str, geoms: np.ndarray) -> float:
    """Load polygons into a table with a GiST index; return the seconds it took."""
    import psycopg

    t0 = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        conn.execute("CREATE TABLE coverage (id integer PRIMARY KEY, geom geometry(Geometry, 4326))")
        wkb = shapely.to_wkb(geoms, hex=True)
        with conn.cursor().copy("COPY coverage (id, geom) FROM STDIN") as copy:
            for i, g in enumerate(wkb.tolist()):
                copy.write_row((i, g))
        conn.execute("CREATE INDEX coverage_geom ON coverage USING gist (geom)")
        conn.execute("VACUUM ANALYZE coverage")
    return time.perf_counter() - t0


def time_points(dsn: str, points: np.ndarray) -> tuple[np.ndarray, list[list[int]]]:
    """Ask which areas cover each (lat, lon), one prepared round trip each; return ns and ids."""
    import psycopg

    timings = np.empty(len(points), dtype=np.int64)
    answers = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.cursor()
        for lat, lon in points[:50].tolist():  # warm the plan cache and the index pages
            cur.execute(QUERY, (lon, lat), prepare=True).fetchall()
        clock = time.perf_counter_ns
        for k, (lat, lon) in enumerate(points.tolist()):
            t = clock()
            rows = cur.execute(QUERY, (lon, lat), prepare=True).fetchall()
            timings[k] = clock() - t
            answers.append(sorted(r[0] for r in rows))
    return timings, answers


def available() -> str | None:
    """Return None when PostGIS can run here, else what is missing."""
    try:
        _bindir()
    except RuntimeError as exc:
        return str(exc)
    if not glob.glob("/usr/share/postgresql/*/extension/postgis.control"):
        return "PostGIS extension not installed (Debian: postgis)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg not installed (requirements.txt)"
    return None
