"""Two or more checkouts of the portal under load in turns, on the same data: what a change costs.

    git worktree add ../portal-before 1800ef2
    python -m benchmarks.compare before=../portal-before after=. --rounds 8 --seconds 3
    python -m benchmarks.compare before=../portal-before after=. --paths report   # crowd reports
    python -m benchmarks.compare before=../portal-before after=. --engine postgresql   # data in PostgreSQL

Each checkout is served by its own gunicorn (its own ``docs/gunicorn.conf.py``, 2 sync workers,
preloaded) on its own copy of one generated database (the benchmark's small data unless
``--full``), beside the bare Flask endpoint; with ``--engine postgresql`` each copy is a database of one
private PostgreSQL + PostGIS cluster (``benchmarks.pg``). wrk loads them one after the other, round after
round, the order reversed every other round, so that a slow spell of a shared machine falls on
all of them. Printed per checkout and path: requests/s, the ratio to the bare endpoint and to
the first checkout (overall and per round) and the workers' CPU time per request, which moves
less with the neighbours' load than requests/s do.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import datagen, load, reports  # noqa: E402

PATHS = {"check": "/api/v1/check?lat={lat}&lon={lon}", "status": "/api/v1/status?lat={lat}&lon={lon}",
         "report": "{town}"}  # crowd reports: POST /api/v1/reports to these towns (benchmarks.reports)


def _run(server: tuple[str, int], paths: list[str], seconds: int, kind: str = "check") -> dict:
    """One wrk run against one server, with the CPU time its workers spent per request."""
    base, master = server
    before = load.workers_cpu_s(master)
    if kind == "report":
        found = reports._post_load(base, paths, seconds, 24)
    else:
        found = load.wrk(base, paths, seconds)
    spent = load.workers_cpu_s(master) - before
    found["cpu_us_per_request"] = round(spent / max(found["requests"], 1) * 1e6)
    return found


def _copier(stack: ExitStack, source: Path, engine: str):
    """Return a function that makes a checkout's own copy of the data: a file, or a PostgreSQL database."""
    if engine == "sqlite":
        def to_file(name: str) -> Path:
            return Path(shutil.copy(source, source.with_name(f"{name}.sqlite")))
        return to_file
    import psycopg

    from benchmarks import pg
    from portal.data import transfer

    dsn = stack.enter_context(pg.cluster())
    host = dict(part.split("=", 1) for part in dsn.split())["host"]

    def to_postgres(name: str) -> str:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "compare_{name}"')
        url = f"postgresql://bench@/compare_{name}?host={host}"
        transfer.move(str(source), url)
        return url
    return to_postgres


def main(argv=None) -> int:
    """Build the data, start every server, load them in turns and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkouts", nargs="+", metavar="NAME=DIR", help="a checkout to serve, named")
    parser.add_argument("--full", action="store_true", help="the full benchmark data (slow to build)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=3, help="seconds of load per run (wrk: whole seconds)")
    parser.add_argument("--paths", default="check,status", help=f"of {', '.join(PATHS)}")
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite", help="where the data is")
    args = parser.parse_args(argv)
    checkouts = dict(item.split("=", 1) for item in args.checkouts)
    kinds = args.paths.split(",")
    with tempfile.TemporaryDirectory(prefix="portal-compare-") as tmp, ExitStack() as stack:
        folder = Path(tmp)
        scale = datagen.FULL if args.full else datagen.SMALL
        data = datagen.write_files(folder / "files", scale)
        datagen.import_files(folder / "portal.sqlite", folder / "files")
        datagen.write_incidents(folder / "portal.sqlite", data["towns"], scale.incidents)
        points = data["points"][:10_000].tolist()
        paths = {k: [PATHS[k].format(lat=lat, lon=lon) for lat, lon in points]
                 for k in kinds if k != "report"}
        if "report" in kinds:
            paths["report"] = data["towns"]["slug"].tolist()
            # Each posted report names its client in X-Forwarded-For (random networks): no rate limit.
            os.environ["PORTAL_TRUSTED_PROXY_HOPS"] = "1"
        servers = {"bare": stack.enter_context(load.gunicorn("benchmarks.bare_app:app", None, probe="/bare"))}
        copy = _copier(stack, folder / "portal.sqlite", args.engine)
        for name, folder_name in checkouts.items():
            db_path = copy(name)
            servers[name] = stack.enter_context(load.gunicorn("wsgi:app", db_path, probe="/api/v1/summary",
                                                              root=Path(folder_name).resolve()))
        names = list(checkouts)
        bare: list[dict] = []
        runs: dict[tuple[str, str], list[dict]] = {(n, k): [] for n in names for k in kinds}
        for r in range(args.rounds):
            bare.append(_run(servers["bare"], ["/bare"], args.seconds))
            for kind in kinds:
                for name in names if r % 2 == 0 else names[::-1]:
                    runs[(name, kind)].append(_run(servers[name], paths[kind], args.seconds, kind))
        total = load.combine(bare)
        print(f"bare: {total['rps']} req/s, p99 {total['p99_ms']} ms,"
              f" worker CPU {statistics.median(b['cpu_us_per_request'] for b in bare)} µs/request")
        for kind in kinds:
            first = runs[(names[0], kind)]
            for name in names:
                mine = runs[(name, kind)]
                found = load.combine(mine)
                line = (f"{name} {kind}: {found['rps']} req/s = {found['rps'] / total['rps']:.3f} x bare"
                        f" (rounds {[round(m['rps'] / b['rps'], 2) for m, b in zip(mine, bare)]}),"
                        f" p99 {found['p99_ms']} ms, worker CPU"
                        f" {statistics.median(m['cpu_us_per_request'] for m in mine)} µs/request")
                if name != names[0]:
                    rounds = [m["rps"] / f["rps"] for m, f in zip(mine, first)]
                    line += (f"; {found['rps'] / load.combine(first)['rps']:.3f} x {names[0]}"
                             f" (median of rounds {statistics.median(rounds):.3f},"
                             f" {min(rounds):.2f} to {max(rounds):.2f})")
                print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
