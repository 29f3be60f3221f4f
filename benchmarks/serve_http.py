"""HTTP throughput and latency of ``fuserec serve`` under concurrent load on loopback.

Starts the real server (``fuserec serve``) in its own process, waits for ``/health``, then a
bounded asyncio + httpx load generator sends ``GET /users/{id}/recommendations?k=10`` for
random users (``--mix`` adds similar-items and explained requests) with ``--concurrency``
requests in flight, stopping after ``--requests`` requests or ``--seconds`` seconds, whichever
comes first. Reports requests/s, p50 / p99 latency and errors.

    .venv/bin/python benchmarks/serve_http.py --artifacts runs/demo/artifacts
    .venv/bin/python benchmarks/serve_http.py --synthetic-items 100000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(artifacts: Path, port: int) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("fuserec")
    cmd = [str(exe), "serve", "--artifacts", str(artifacts), "--port", str(port)]
    env = {**os.environ, "FUSEREC_TOKEN": ""}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 900
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("server did not come up")


async def load(base: str, paths: list[str], concurrency: int, seconds: float
               ) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0
    queue = iter(paths)
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10) as client:

        async def worker() -> None:
            nonlocal errors
            for path in queue:
                if time.perf_counter() > deadline:
                    return
                t0 = time.perf_counter()
                try:
                    res = await client.get(path)
                    ok = res.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - t0)
                errors += not ok

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return latencies, errors, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--artifacts", type=Path, help="Artifact folder to serve.")
    src.add_argument("--synthetic-items", type=int, help="Serve a synthetic catalog this big.")
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--mix", action="store_true",
                        help="Also similar-items (20%%) and explained (10%%) requests.")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    tmp = None
    artifacts = args.artifacts
    if args.synthetic_items:
        sys.path.insert(0, str(Path(__file__).parent))
        from serve_latency import synthetic_artifacts

        tmp = tempfile.TemporaryDirectory(prefix="fuserec-http-")
        artifacts = synthetic_artifacts(Path(tmp.name), args.synthetic_items)

    port = free_port()
    t0 = time.perf_counter()
    proc = start_server(artifacts, port)
    startup = time.perf_counter() - t0
    base = f"http://127.0.0.1:{port}"
    try:
        health = httpx.get(f"{base}/health").json()
        users = [u["id"] for u in httpx.get(f"{base}/users?limit=500").json()["users"]]
        items = [i["id"] for i in httpx.get(f"{base}/items?limit=200").json()["items"]]
        rng = random.Random(0)
        paths = []
        for _ in range(args.requests):
            r = rng.random()
            if args.mix and r < 0.2:
                paths.append(f"/items/{rng.choice(items)}/similar?k={args.k}")
            elif args.mix and r < 0.3:
                paths.append(f"/users/{rng.choice(users)}/recommendations?k={args.k}"
                             f"&explain=true")
            else:
                paths.append(f"/users/{rng.choice(users)}/recommendations?k={args.k}")
        # warm up (first requests pay for lazy imports and caches)
        asyncio.run(load(base, paths[:200], 4, 30))
        lat, errors, elapsed = asyncio.run(load(base, paths, args.concurrency, args.seconds))
    finally:
        proc.terminate()
        proc.wait(10)
        if tmp:
            tmp.cleanup()
    ms = np.asarray(lat) * 1e3
    result = {
        "catalog_items": health["items"], "index": health["index"],
        "server_startup_seconds": round(startup, 1),
        "requests": len(lat), "errors": errors, "concurrency": args.concurrency,
        "mix": args.mix, "seconds": round(elapsed, 2),
        "requests_per_second": round(len(lat) / elapsed, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "max_ms": round(float(ms.max()), 2),
        "target": {"requests_per_second": 300, "p99_ms": 50},
    }
    result["meets_target"] = (result["requests_per_second"] >= 300 and result["p99_ms"] <= 50
                              and errors == 0)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
