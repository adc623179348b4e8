"""Crowd reports under load, and a simulated outage replayed against the spike rule.

1. **Accepted per second**: gunicorn as deployed (2 workers, ``docs/gunicorn.conf.py``) on the
   demo database behind one trusted proxy hop; wrk posts ``POST /api/v1/reports`` from random
   client networks to random towns while a second wrk reads (``GET /api/v1/reports?town=`` and
   ``/api/v1/status?town=``) at the same time. Figures: reports accepted (202) per second and
   their p50/p99, the reads' rate and p99, errors. The issue's target: 1,000 reports/s with
   p99 < 100 ms while reads go on.
2. **Outage replay**: a town with a usual level (four past weeks of a few reports an hour),
   then reports rising over 20 minutes from distinct networks, fed on a simulated clock to
   ``reports.record`` (what the view calls, in one write transaction each). Figures: when the
   stream crossed the rule (computed from the stream alone), when the draft appeared (its
   ``opened_at``), the delay between them (target < 2 min), and how long after the draft's
   commit the staff notice was written by the worker (Maildir, wall clock).

    python -m benchmarks.reports            # 20 s of load
    python -m benchmarks.reports --small    # 4 s (CI)

Prints figures; asserts nothing about timings (a shared machine can be slow for a while).
"""

from __future__ import annotations

import argparse
import json
import mailbox
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import load  # noqa: E402
from portal.data import build  # noqa: E402

POST_SCRIPT = """
local towns = {%s}
init = function(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end
request = function()
  local town = towns[math.random(#towns)]
  local address = math.random(1, 223) .. "." .. math.random(0, 255) .. "." .. math.random(0, 255) .. ".7"
  local body = '{"service": "internet", "town": "' .. town .. '"}'
  return wrk.format("POST", "/api/v1/reports",
                    {["Content-Type"] = "application/json", ["X-Forwarded-For"] = address}, body)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nRESULT {"requests": %%d, "duration_us": %%d, "errors": %%d, "non2xx": %%d, ' ..
    '"p50_us": %%d, "p99_us": %%d, "max_us": %%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def _post_load(base: str, towns: list[str], seconds: int, connections: int) -> dict:
    """Post reports with wrk for ``seconds``; return rate and latency (wrk counts 4xx/5xx as non2xx)."""
    import subprocess

    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(POST_SCRIPT % ", ".join(json.dumps(t) for t in towns))
        script = f.name
    try:
        run = subprocess.run(
            [
                "wrk",
                "-t",
                "1",
                "-c",
                str(connections),
                "-d",
                f"{int(seconds)}s",
                "--timeout",
                "10s",
                "-s",
                script,
                base,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        os.unlink(script)
    found = json.loads(run.stdout.split("RESULT ", 1)[1].splitlines()[0])
    return {
        "rps": round(found["requests"] / (found["duration_us"] / 1e6), 1),
        "p50_ms": round(found["p50_us"] / 1000, 2),
        "p99_ms": round(found["p99_us"] / 1000, 2),
        "max_ms": round(found["max_us"] / 1000, 2),
        "requests": found["requests"],
        "errors": found["errors"],
        "non2xx": found["non2xx"],
    }


def accepted_per_second(folder: Path, seconds: int, workers: int = 2, say=print) -> dict:
    """Load the report endpoint and the reads at once on gunicorn; return both sides' figures."""
    import sqlite3

    db_path = folder / "reports.sqlite"
    build.build_database(db_path)
    with sqlite3.connect(db_path) as conn:
        live = conn.execute("SELECT value FROM meta WHERE key = 'live_towns'").fetchone()[0]
        towns = [
            r[0] for r in conn.execute("SELECT slug FROM towns WHERE layer_id = ? ORDER BY slug", (live,))
        ]
    os.environ["PORTAL_TRUSTED_PROXY_HOPS"] = "1"  # the posts' X-Forwarded-For is each report's client
    try:
        with load.gunicorn("wsgi:app", db_path, workers=workers, probe="/api/v1/summary") as (base, _pid):
            reads = [f"/api/v1/reports?town={t}" for t in towns] + [f"/api/v1/status?town={t}" for t in towns]
            out: dict = {"posts_alone": _post_load(base, towns, seconds, 24)}
            reader = threading.Thread(
                target=lambda: out.setdefault("reads", load.wrk(base, reads, seconds, 8))
            )
            reader.start()
            out["posts"] = _post_load(base, towns, seconds, 24)
            reader.join()
    finally:
        os.environ.pop("PORTAL_TRUSTED_PROXY_HOPS", None)
    with sqlite3.connect(db_path) as conn:
        stored, counted = conn.execute("SELECT count(*), sum(counted) FROM reports").fetchone()
        drafts = conn.execute("SELECT count(*) FROM report_drafts").fetchone()[0]
    accepted = out["posts"]["rps"] - out["posts"]["non2xx"] / max(seconds, 1)
    out.update(
        {
            "workers": workers,
            "seconds": seconds,
            "reports_stored": stored,
            "reports_counted": counted,
            "accepted_per_s": round(accepted, 1),
            "drafts": drafts,
        }
    )
    alone = out["posts_alone"]
    say(
        f"  POST /api/v1/reports alone: {alone['rps']} requests/s, p50 {alone['p50_ms']} ms,"
        f" p99 {alone['p99_ms']} ms, non-2xx {alone['non2xx']}"
    )
    say(
        f"  POST /api/v1/reports while reads go on: {out['posts']['rps']} requests/s,"
        f" p50 {out['posts']['p50_ms']} ms, p99 {out['posts']['p99_ms']} ms,"
        f" non-2xx {out['posts']['non2xx']}, errors {out['posts']['errors']};"
        f" {accepted:.0f} accepted/s; {stored} reports stored in both runs, {drafts} drafts"
    )
    say(f"  reads at the same time: {out['reads']['rps']} requests/s, p99 {out['reads']['p99_ms']} ms")
    return out


def _stream(start: float, seed: int = 7) -> list[tuple[float, str]]:
    """Return the outage's reports ``(time, client address)``: rising linearly over 20 minutes."""
    rng = random.Random(seed)
    out, t = [], start
    # The rate grows from 0.2 to 6 reports a minute: a slow start, as when an outage spreads.
    while t < start + 1200:
        minute = (t - start) / 60
        rate = 0.2 + minute * 0.29
        t += rng.expovariate(rate / 60)
        n = len(out)
        out.append((t, f"100.{64 + n % 60}.{n // 60}.{rng.randrange(1, 250)}"))
    return [r for r in out if r[0] < start + 1200]


def _crossing(conn, stream, town: str, reports_mod) -> float | None:
    """Return the first moment of the stream at which the spike rule holds (from the stream alone)."""
    window = reports_mod.SPIKE_WINDOW_S
    for n, (at, _address) in enumerate(stream):
        recent = [a for t, a in stream[: n + 1] if t > at - window]
        networks = {reports_mod.network_of(a) for a in recent}
        base = reports_mod.usual(conn, town=town, service="internet", at=at) * window / 3600
        if (
            len(networks) >= reports_mod.SPIKE_MIN_NETWORKS
            and len(set(recent)) >= reports_mod.SPIKE_RATIO * base
        ):
            return at
    return None


def outage_replay(folder: Path, say=print) -> dict:
    """Replay a 20-minute outage on a simulated clock; return when the rule was crossed and the draft made."""
    from portal import config
    from portal.listening import reports, store, worker
    from portal.listening.settings import Settings

    db_path = folder / "replay.sqlite"
    build.build_database(db_path)
    town, secret = "pechory", "bench"
    start = 1_800_000_000.0  # the simulated clock: a Tuesday evening
    rng = random.Random(3)
    with store.transaction(db_path) as conn:
        # The usual level: four past weeks of 0-2 reports an hour around this hour of the week.
        for week in range(1, 5):
            for hour in range(-3, 4):
                for k in range(rng.randrange(0, 3)):
                    at = start - week * 7 * 86400 + hour * 3600 + rng.randrange(3600)
                    reports.record(
                        conn,
                        secret=secret,
                        service="internet",
                        town=town,
                        cell=None,
                        address=f"198.51.{week}.{hour + 10 + k}",
                        cookie=None,
                        at=at,
                    )
    stream = _stream(start)
    conn = store.connect(db_path)
    try:
        crossed = _crossing(conn, stream, town, reports)
        usual = reports.usual(conn, town=town, service="internet", at=start)
    finally:
        conn.close()
    t0 = time.perf_counter()
    drafted_at_wall = None
    draft = None
    for at, address in stream:
        with store.transaction(db_path) as conn:
            made = reports.record(
                conn,
                secret=secret,
                service="internet",
                town=town,
                cell=None,
                address=address,
                cookie=None,
                at=at,
            )
        if made["drafted"]:
            drafted_at_wall = time.perf_counter()
            draft = at
            settings = Settings.from_config(
                config.settings(
                    {
                        "DATABASE": str(db_path),
                        "SMTP_URL": None,
                        "STAFF_EMAIL": "noc@example.org",
                        "MAILDIR": str(folder / "mail"),
                    }
                )
            )
            worker.run_once(settings)
            notice_ms = (time.perf_counter() - drafted_at_wall) * 1000
    replay_s = time.perf_counter() - t0
    notices = len(mailbox.Maildir(str(folder / "mail"), create=False)) if draft else 0
    figures = {
        "reports": len(stream),
        "usual_per_hour": round(usual, 2),
        "threshold_after_min": round((crossed - start) / 60, 2) if crossed else None,
        "draft_after_min": round((draft - start) / 60, 2) if draft else None,
        "draft_delay_s": round(draft - crossed, 1) if draft and crossed else None,
        "staff_notice_written_ms": round(notice_ms, 1) if draft else None,
        "staff_notices": notices,
        "replay_wall_s": round(replay_s, 2),
    }
    say(
        f"  {len(stream)} reports over 20 simulated minutes (usual {usual:.2f} an hour): rule crossed at "
        f"+{figures['threshold_after_min']} min, draft at +{figures['draft_after_min']} min, "
        f"{figures['draft_delay_s']} s after the threshold; staff notice written "
        f"{figures['staff_notice_written_ms']} ms after the draft's commit"
    )
    return figures


def run(folder: Path, seconds: int, workers: int = 2, say=print) -> dict:
    """Run both measurements; return their figures."""
    return {
        "load": accepted_per_second(folder, seconds, workers, say=say),
        "replay": outage_replay(folder, say=say),
    }


def main(argv=None) -> int:
    """Run the reports benchmark alone and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="4 s of load (CI)")
    parser.add_argument("--seconds", type=int, help="seconds of load (default 20; small 4)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="portal-reports-") as tmp:
        figures = run(Path(tmp), args.seconds or (4 if args.small else 20), args.workers)
    print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
