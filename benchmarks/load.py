"""HTTP load: gunicorn as deployed (docs/gunicorn.conf.py), nginx as shipped (docs/nginx.conf), wrk."""
from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NGINX_CONF = ROOT / "docs" / "nginx.conf"

WRK_SCRIPT = """
local paths = {%s}
local i = 0
init = function(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  i = math.random(#paths)
end
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nRESULT {"requests": %%d, "duration_us": %%d, "errors": %%d, "non2xx": %%d, "p50_us": %%d, "p99_us": %%d, "max_us": %%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def free_port() -> int:
    """Return a free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float = 120.0) -> None:
    """Wait until a URL answers (any status)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=5).read()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@contextmanager
def _running(cmd: list[str], probe_url: str, startup_s: float, stop_signal: int, **popen):
    """Start a server, wait until ``probe_url`` answers, yield its process; stop it afterwards."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **popen)
    try:
        _wait_http(probe_url, timeout=startup_s)
        yield proc
    finally:
        proc.send_signal(stop_signal)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def gunicorn(target: str, db_path: Path | None, workers: int = 2, probe: str = "/", log: Path | None = None,
             worker_class: str = "sync", threads: int = 1, root: Path = ROOT):
    """Run gunicorn with the shipped settings on a free port; yield (base URL, master pid).

    ``root`` is the checkout whose code and ``docs/gunicorn.conf.py`` are served (this one by default).
    """
    port = free_port()
    env = {**os.environ, "PORTAL_BIND": f"127.0.0.1:{port}", "PORTAL_WORKERS": str(workers),
           "PORTAL_WORKER_CLASS": worker_class, "PORTAL_THREADS": str(threads),
           "PYTHONPATH": str(root)}
    if db_path is not None:
        env["PORTAL_DB"] = str(db_path)
    if log is not None:
        env["PORTAL_ACCESS_LOG"] = str(log)
    cmd = [sys.executable, "-m", "gunicorn", "-c", str(Path(root) / "docs" / "gunicorn.conf.py"), target]
    base = f"http://127.0.0.1:{port}"
    with _running(cmd, base + probe, 600, signal.SIGTERM, cwd=root, env=env) as proc:
        yield base, proc.pid


def workers_cpu_s(master_pid: int) -> float:
    """Return the CPU time (user + system, seconds) the workers of a gunicorn master have used so far."""
    ticks = 0
    for pid in Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def worker_memory(master_pid: int) -> list[dict]:
    """Return VmRSS and PSS (MiB) of each worker forked by a gunicorn master."""
    out = []
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    for pid in [master_pid] + [int(c) for c in children]:
        status = Path(f"/proc/{pid}/status").read_text()
        rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
        pss = None
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            pss = int(re.search(r"^Pss:\s+(\d+)", rollup, re.M).group(1)) / 1024
        except (OSError, AttributeError):
            pass
        out.append({"pid": pid, "role": "master" if pid == master_pid else "worker", "rss_mib": round(rss, 1),
                    "pss_mib": round(pss, 1) if pss is not None else None})
    return out


def wrk(base: str, paths: list[str], seconds: int, connections: int = 32, threads: int = 1) -> dict:
    """Load ``base`` with wrk, cycling through ``paths``; return requests/s and latency."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_SCRIPT % ", ".join(json.dumps(p) for p in paths))
        script = f.name
    try:
        before = cpu_ticks()
        run = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{int(seconds)}s",
                              "--timeout", "10s", "-s", script, base], capture_output=True, text=True,
                             check=True)
        after = cpu_ticks()
    finally:
        os.unlink(script)
    found = json.loads(run.stdout.split("RESULT ", 1)[1].splitlines()[0])
    return {"rps": round(found["requests"] / (found["duration_us"] / 1e6), 1),
            "p50_ms": round(found["p50_us"] / 1000, 2), "p99_ms": round(found["p99_us"] / 1000, 2),
            "max_ms": round(found["max_us"] / 1000, 2), "requests": found["requests"],
            "errors": found["errors"], "non2xx": found["non2xx"], "steal_pct": steal_pct(before, after)}


def cpu_ticks() -> list[int] | None:
    """Return the machine's CPU time counters (/proc/stat's first line), None where there are none."""
    try:
        with open("/proc/stat") as f:
            return [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None


def steal_pct(before: list[int] | None, after: list[int] | None) -> float | None:
    """Return the share of CPU time the hypervisor gave to others between two readings (%).

    A virtual machine's CPUs can stall while the host runs something else; "steal" counts that
    time. A run with a few per cent of it measured the neighbours as much as the portal.
    """
    if not before or not after or len(before) < 8 or len(after) < 8:
        return None
    # user nice system idle iowait irq softirq steal (guest time is already in user).
    spent = [b - a for a, b in zip(before[:8], after[:8])]
    total = sum(spent)
    return round(100 * spent[7] / total, 2) if total > 0 else None


def combine(runs: list[dict]) -> dict:
    """Return one figure for several wrk runs of one target: requests/s over all of them.

    p50 is the median of the runs' p50s; p99 and max are the worst run's (no run hides behind
    the others), and each run's p99 is listed too, with the most CPU time stolen in one run.
    """
    seconds = sum(r["requests"] / r["rps"] for r in runs if r["rps"])
    requests = sum(r["requests"] for r in runs)
    p50 = sorted(r["p50_ms"] for r in runs)[len(runs) // 2]
    steals = [r["steal_pct"] for r in runs if r.get("steal_pct") is not None]
    return {"rps": round(requests / seconds, 1) if seconds else 0.0, "p50_ms": p50,
            "p99_ms": max(r["p99_ms"] for r in runs), "max_ms": max(r["max_ms"] for r in runs),
            "requests": requests, "errors": sum(r["errors"] for r in runs),
            "non2xx": sum(r["non2xx"] for r in runs), "runs": len(runs),
            "p99_ms_rounds": [r["p99_ms"] for r in runs], "steal_pct_max": max(steals) if steals else None}


def nginx_conf(upstream_port: int | list[int], port: int, folder: Path) -> str:
    """Return docs/nginx.conf with ports, cache and log paths moved into ``folder``.

    ``upstream_port``: one portal node, or several (one ``server`` line each, as docs/deploy.md
    shows for more than one machine).
    """
    text = NGINX_CONF.read_text()
    ports = [upstream_port] if isinstance(upstream_port, int) else list(upstream_port)
    swaps = {
        "listen 80 default_server;": f"listen 127.0.0.1:{port} default_server;",
        "server 127.0.0.1:8000;": "\n        ".join(f"server 127.0.0.1:{p};" for p in ports),
        "/var/cache/nginx/portal": str(folder / "cache"),
        "/run/nginx-portal.pid": str(folder / "nginx.pid"),
        "/var/log/nginx/portal-access.log": str(folder / "access.log"),
        "/var/log/nginx/portal-error.log": str(folder / "error.log"),
        "/srv/portal/static-export": str(folder / "export"),
    }
    for old, new in swaps.items():
        if old not in text:
            raise ValueError(f"docs/nginx.conf no longer contains {old!r}; update benchmarks/load.py")
        text = text.replace(old, new)
    return text


@contextmanager
def nginx(upstream_port: int | list[int]):
    """Run nginx with the shipped configuration in front of a gunicorn (or several); yield (base URL, access log)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
    os.chmod(folder, 0o755)
    (folder / "cache").mkdir()
    (folder / "export").mkdir()
    if os.geteuid() == 0:
        user = pwd.getpwnam("www-data")
        os.chown(folder / "cache", user.pw_uid, user.pw_gid)
    port = free_port()
    conf = folder / "nginx.conf"
    conf.write_text(nginx_conf(upstream_port, port, folder))
    cmd = ["nginx", "-c", str(conf), "-p", str(folder), "-g", "daemon off;"]
    base = f"http://127.0.0.1:{port}"
    try:
        with _running(cmd, base + "/healthz", 30, signal.SIGQUIT):
            yield base, folder / "access.log"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def cache_statuses(access_log: Path) -> dict:
    """Count nginx cache results (HIT, MISS, UPDATING, ...) in the shipped log format."""
    counts: dict[str, int] = {}
    for line in access_log.read_text().splitlines():
        found = re.search(r'cache=(\S+)', line)
        if found:
            counts[found.group(1)] = counts.get(found.group(1), 0) + 1
    return counts


def fetch(url: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    """GET a URL; return (status, headers, body) without following errors."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


@contextmanager
def redis_server(folder: Path):
    """Run Debian's redis-server on a private Unix socket in ``folder``; yield its URL."""
    server = shutil.which("redis-server")
    if server is None:
        raise RuntimeError("redis-server is missing (Debian: redis-server; make install-test installs it)")
    socket_path = folder / "redis.sock"
    proc = subprocess.Popen([server, "--port", "0", "--unixsocket", str(socket_path), "--save", "",
                             "--appendonly", "no", "--dir", str(folder)], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not socket_path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"unix://{socket_path}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
