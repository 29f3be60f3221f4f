"""Feedback under load with the journal: latency, and no acknowledged write lost to a crash.

Starts ``fuserec serve --journal`` (its own process, 127.0.0.1, a free port) over an artifact
folder (``--artifacts``, or a small demo built with ``fuserec demo --items 200 --users 100
--no-describe``), then for ``--seconds`` runs ``--writers`` concurrent feedback clients
(``POST /users/{id}/feedback``, every one a distinct user/item pair) and ``--readers``
recommendation clients (``GET /users/{id}/recommendations?k=10``). At the end the server is
killed with SIGKILL while requests are still in flight, restarted on the same journal, and every
acknowledged feedback (a 200 response) is looked for after the replay, both through
``GET /users/{id}`` (``n_feedback``) and in the journal file. Prints acknowledged, lost and p50 /
p99 per endpoint, for the group-commit journal and, unless ``--no-baseline``, for the baseline
with one write + fsync per event (``FUSEREC_JOURNAL_GROUP_COMMIT=0``). ``--before-src DIR`` adds
a run of the same load against the server code in ``DIR`` (a ``src`` folder, e.g. an earlier
commit's: ``git archive COMMIT src | tar -x -C /tmp/before``), so a change is measured against
what it replaced in one run, on one machine state; a table of every run ends the output.

The load threads use ``http.client`` by default (``--client httpx`` for the heavier client of
the first measurements); the CPU seconds the server and the client used during the load and the
load average are printed with each run, since on a small shared machine they decide the tail.
Loopback traffic only; each phase is bounded in time. SIGKILL tests a process crash (the page
cache survives it); what fsync adds, surviving power loss, cannot be shown this way.

    .venv/bin/python benchmarks/serve_load.py --seconds 20
    .venv/bin/python benchmarks/serve_load.py --artifacts runs/demo/artifacts --no-baseline
    .venv/bin/python benchmarks/serve_load.py --seconds 20 --before-src /tmp/before/src
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import httpx
import numpy as np
import psutil

FUSEREC = Path(sys.executable).with_name("fuserec")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_demo(out: Path, items: int, users: int) -> Path:
    """A small demo artifact folder (real encoders, no describe stage)."""
    cmd = [str(FUSEREC), "demo", "--items", str(items), "--users", str(users), "--no-describe",
           "--no-progress", "--out", str(out)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, timeout=1800)
    return out / "artifacts"


def start_server(artifacts: Path, journal: Path, group_commit: bool, log: Path,
                 timeout: float = 600, src: Path | None = None
                 ) -> tuple[subprocess.Popen, str, float]:
    port = free_port()
    env = {**os.environ, "FUSEREC_TOKEN": "",
           "FUSEREC_JOURNAL_GROUP_COMMIT": "1" if group_commit else "0"}
    if src is not None:  # this code instead of the installed package (PYTHONPATH comes first)
        env["PYTHONPATH"] = str(src)
    cmd = [str(FUSEREC), "serve", "--artifacts", str(artifacts), "--host", "127.0.0.1",
           "--port", str(port), "--journal", str(journal)]
    t0 = time.perf_counter()
    with open(log, "ab") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}); see {log}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return proc, base, time.perf_counter() - t0
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    proc.wait(10)
    raise RuntimeError(f"the server did not come up in {timeout:.0f} s; see {log}")


class _StdlibClient:
    """One keep-alive connection through ``http.client``: about a third of httpx's CPU per
    request (0.3 against 0.9 ms measured here), which on 2 shared cores goes to the server."""

    def __init__(self, base: str) -> None:
        url = urllib.parse.urlsplit(base)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.conn: http.client.HTTPConnection | None = None

    def _send(self, method: str, path: str, body: bytes | None, headers: dict) -> int:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            self.conn.request(method, path, body, headers)
            res = self.conn.getresponse()
            res.read()
            return res.status
        except BaseException:
            self.conn.close()  # a fresh connection next time
            self.conn = None
            raise

    def post_json(self, path: str, payload: dict) -> int:
        return self._send("POST", path, json.dumps(payload).encode(),
                          {"Content-Type": "application/json"})

    def get(self, path: str) -> int:
        return self._send("GET", path, None, {})

    def __enter__(self) -> _StdlibClient:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.conn is not None:
            self.conn.close()


class _HttpxClient:
    """One ``httpx.Client`` (keep-alive): the client of the earlier measurements."""

    def __init__(self, base: str) -> None:
        self.client = httpx.Client(base_url=base, timeout=30)

    def post_json(self, path: str, payload: dict) -> int:
        return self.client.post(path, json=payload).status_code

    def get(self, path: str) -> int:
        return self.client.get(path).status_code

    def __enter__(self) -> _HttpxClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()


def open_client(kind: str, base: str) -> _StdlibClient | _HttpxClient:
    return _StdlibClient(base) if kind == "stdlib" else _HttpxClient(base)


def load(base: str, items: list[str], readers_users: list[str], writers: int, readers: int,
         seconds: float, proc: subprocess.Popen, tag: str, client_kind: str = "stdlib") -> dict:
    """Run the writers and readers, SIGKILL the server at the deadline; what was acknowledged.

    Each client is a thread with its own keep-alive connection (``client_kind``: ``stdlib``,
    http.client, or ``httpx``): on a small machine the client shares the cores with the server,
    and an asyncio client or a heavy one spends more CPU per request than the server and
    becomes what is measured.
    """
    acked: list[tuple[str, str]] = []
    lat: dict[str, list[float]] = {"feedback": [], "recommendations": []}
    errors = {"feedback": 0, "recommendations": 0}
    stop = threading.Event()
    count_lock = threading.Lock()

    def failed(endpoint: str) -> None:
        with count_lock:
            errors[endpoint] += 1

    def writer(w: int) -> None:
        n = 0
        with open_client(client_kind, base) as client:
            while not stop.is_set():
                user = f"{tag}-w{w}-u{n // len(items)}"  # each (user, item) pair once
                item = items[n % len(items)]
                n += 1
                t0 = time.perf_counter()
                try:
                    status = client.post_json(f"/users/{user}/feedback", {"item_id": item})
                except (httpx.HTTPError, OSError, http.client.HTTPException):
                    if not stop.is_set():  # after the kill: expected
                        failed("feedback")
                    continue
                if status == 200:  # acknowledged: must survive the crash
                    lat["feedback"].append(time.perf_counter() - t0)
                    acked.append((user, item))
                else:
                    failed("feedback")

    def reader(r: int) -> None:
        rng = random.Random(r)
        with open_client(client_kind, base) as client:
            while not stop.is_set():
                user = rng.choice(readers_users)
                t0 = time.perf_counter()
                try:
                    status = client.get(f"/users/{user}/recommendations?k=10")
                except (httpx.HTTPError, OSError, http.client.HTTPException):
                    if not stop.is_set():
                        failed("recommendations")
                    continue
                if status == 200:
                    lat["recommendations"].append(time.perf_counter() - t0)
                else:
                    failed("recommendations")

    threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(writers)]
    threads += [threading.Thread(target=reader, args=(r,), daemon=True) for r in range(readers)]
    # where the CPU went: this client's threads and the server process, over the load phase
    server = psutil.Process(proc.pid)
    server_cpu0, client_cpu0 = sum(server.cpu_times()[:2]), _own_cpu()
    start = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    server_cpu = sum(server.cpu_times()[:2]) - server_cpu0
    client_cpu = _own_cpu() - client_cpu0
    proc.kill()  # SIGKILL, with requests in flight
    stop.set()
    elapsed = time.perf_counter() - start
    for t in threads:
        t.join(60)
    proc.wait(30)
    return {"acked": acked, "latency": lat, "errors": errors, "seconds": elapsed,
            "server_cpu_s": round(server_cpu, 1), "client_cpu_s": round(client_cpu, 1)}


def _own_cpu() -> float:
    """CPU seconds (user + system) this process used so far, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"count": 0}
    ms = np.asarray(values) * 1e3
    return {"count": len(values), "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p99_ms": round(float(np.percentile(ms, 99)), 1),
            "max_ms": round(float(ms.max()), 1)}


def run_mode(artifacts: Path, work: Path, group_commit: bool, args: argparse.Namespace,
             src: Path | None = None) -> dict:
    name = "group-commit" if group_commit else "baseline (fsync per write)"
    tag = "gc" if group_commit else "base"
    if src is not None:
        name, tag = f"before ({src})", "before"
    folder = work / tag
    folder.mkdir(parents=True, exist_ok=True)
    journal, log = folder / "journal.jsonl", folder / "server.log"
    journal.unlink(missing_ok=True)
    proc, base, startup = start_server(artifacts, journal, group_commit, log, src=src)
    try:
        items = [i["id"] for i in httpx.get(f"{base}/items", params={"limit": 200}).json()["items"]]
        users = [u["id"] for u in httpx.get(f"{base}/users", params={"limit": 500}).json()["users"]]
        for u in users[:20]:  # warm up lazy imports and caches
            httpx.get(f"{base}/users/{u}/recommendations", params={"k": 10}, timeout=60)
        httpx.post(f"{base}/users/{tag}-warmup/feedback", json={"item_id": items[0]}, timeout=60)
        result = load(base, items, users, args.writers, args.readers, args.seconds, proc, tag,
                      args.client)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    acked = result["acked"]
    # restart on the same journal: every acknowledged feedback must be back
    proc, base, restart = start_server(artifacts, journal, group_commit, log, src=src)
    try:
        want: dict[str, int] = {}
        for user, _ in acked:
            want[user] = want.get(user, 0) + 1
        lost_api = 0
        with httpx.Client(base_url=base, timeout=30) as client:
            for user, n in want.items():
                res = client.get(f"/users/{user}")
                have = res.json()["n_feedback"] if res.status_code == 200 else 0
                lost_api += max(0, n - have)  # more than acked: in flight at the kill, kept
    finally:
        proc.terminate()
        proc.wait(30)
    in_journal = set()
    for line in journal.read_bytes().split(b"\n"):
        if line.strip():
            event = json.loads(line)
            if event.get("event") == "feedback":
                in_journal.add((event["user"], event["item"]))
    lost_journal = len(set(acked) - in_journal)
    fb = percentiles(result["latency"]["feedback"])
    return {
        "mode": name, "client": args.client, "seconds": round(result["seconds"], 1),
        "writers": args.writers, "readers": args.readers,
        "acknowledged": len(acked), "lost_journal": lost_journal, "lost_api": lost_api,
        "journaled_not_acknowledged": len(in_journal) - len(set(acked)) - 1,  # - warm-up
        "feedback_per_second": round(len(acked) / result["seconds"], 1),
        "feedback": fb, "recommendations": percentiles(result["latency"]["recommendations"]),
        "errors": result["errors"], "startup_s": round(startup, 1),
        "server_cpu_s": result["server_cpu_s"], "client_cpu_s": result["client_cpu_s"],
        "load_average": round(os.getloadavg()[0], 1),
        "restart_with_replay_s": round(restart, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--artifacts", type=Path, default=None,
                        help="Artifact folder to serve (default: build a small demo).")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--writers", type=int, default=20)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--demo-items", type=int, default=200)
    parser.add_argument("--demo-users", type=int, default=100)
    parser.add_argument("--work", type=Path, default=None,
                        help="Folder for the demo, journals and server logs (default: a "
                             "temporary folder; the journal's fsyncs go to its disk).")
    parser.add_argument("--no-baseline", action="store_true",
                        help="Skip the baseline run with one fsync per write.")
    parser.add_argument("--client", choices=("stdlib", "httpx"), default="stdlib",
                        help="HTTP client of the load threads: http.client (default, light) "
                             "or httpx (the client of the first measurements, about 3x the "
                             "CPU per request).")
    parser.add_argument("--before-src", type=Path, default=None,
                        help="Also run the load against the server code in this src folder "
                             "(an earlier version), for a before / now comparison.")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    tmp = None
    if args.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="fuserec-load-")
        work = Path(tmp.name)
    else:
        work = args.work
        work.mkdir(parents=True, exist_ok=True)
    try:
        artifacts = args.artifacts
        if artifacts is None:
            print(f"building a demo ({args.demo_items} items, {args.demo_users} users)...",
                  flush=True)
            artifacts = build_demo(work / "demo", args.demo_items, args.demo_users)
        results = []
        runs: list[tuple[bool, Path | None]] = [(True, None)]
        if args.before_src is not None:
            runs.append((True, args.before_src.resolve()))
        if not args.no_baseline:
            runs.append((False, None))
        for group_commit, src in runs:
            r = run_mode(artifacts.resolve(), work, group_commit, args, src)
            results.append(r)
            print(f"\n{r['mode']}: {r['seconds']} s, {r['writers']} writers, {r['readers']} "
                  f"readers")
            print(f"  feedback acknowledged {r['acknowledged']} ({r['feedback_per_second']}/s), "
                  f"lost after SIGKILL + replay: {r['lost_journal']} (journal), "
                  f"{r['lost_api']} (GET /users/{{id}})")
            for ep in ("feedback", "recommendations"):
                s = r[ep]
                print(f"  {ep:16s} n={s['count']:6d}  p50 {s.get('p50_ms', '-')} ms  "
                      f"p99 {s.get('p99_ms', '-')} ms  max {s.get('max_ms', '-')} ms  "
                      f"errors {r['errors'][ep]}")
            print(f"  startup {r['startup_s']} s, restart with replay {r['restart_with_replay_s']}"
                  f" s; CPU during the load: server {r['server_cpu_s']} s, client "
                  f"{r['client_cpu_s']} s; load average {r['load_average']}", flush=True)
        print("\n| run | acknowledged | lost | feedback p50 / p99 ms | "
              "recommendations p50 / p99 ms |")
        print("|---|---:|---:|---:|---:|")
        for r in results:
            fb, rec = r["feedback"], r["recommendations"]
            print(f"| {r['mode']} | {r['acknowledged']} ({r['feedback_per_second']}/s) | "
                  f"{r['lost_journal'] + r['lost_api']} | {fb.get('p50_ms')} / "
                  f"{fb.get('p99_ms')} | {rec.get('p50_ms')} / {rec.get('p99_ms')} |")
        text = json.dumps(results, indent=2)
        if args.json:
            args.json.write_text(text + "\n")
        print("\n" + text)
        if any(r["lost_journal"] or r["lost_api"] for r in results):
            sys.exit(1)
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main()
