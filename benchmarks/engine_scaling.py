"""Engine scaling: the Ray engine at 1 and 2 workers against the in-process engine.

    nice .venv/bin/python benchmarks/engine_scaling.py [--items 480 --repeat 5
        --modality text image audio --json results.json]

Generates the demo catalog (``--items`` items) in a temp dir, starts one local Ray
(``num_cpus=2``) and, per modality, encodes every item's text / image / audio clip (no cache)
(``--repeat`` times over, so a job lasts long enough that start-up does not dominate) three
times in the same run: the in-process encoder with its defaults (all cores), the Ray
engine with 1 actor (1 CPU, 1 thread) and with 2 actors. Reported per run:

* wall: from the first request to the last vector, *including* each Ray job's actor start and
  model load (what a user waits for on a small job);
* busy: seconds the actors spent inside the encoder (summed over actors, measured in the
  actors; start-up, model loading and transfers excluded): inputs per busy second is the
  per-core rate a long job converges to. For the local encoder busy = wall (model load
  excluded).

Ratios ray-2/ray-1 (scaling) and ray-2/local (against in-process) come from the same run, and
the per-busy-second rates are the per-core rates the 1M / 100M estimate in BENCHMARKS.md uses.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from fuserec.data.loaders import load_catalog  # noqa: E402
from fuserec.data.schema import Catalog  # noqa: E402
from fuserec.data.synthetic import DemoCatalogSpec, generate_demo_catalog  # noqa: E402
from fuserec.encode import DEFAULT_ENCODERS, Encoder  # noqa: E402
from fuserec.encode.pipeline import MEDIA_COLUMN, _paths_of  # noqa: E402
from fuserec.engines import EncoderSpec, get_engine  # noqa: E402


def _inputs(catalog: Catalog, modality: str) -> list[str]:
    """The items' texts, or their media files as absolute paths, in catalog order."""
    if modality == "text":
        return [t for t in catalog.item_texts() if t]
    column = MEDIA_COLUMN[modality]
    return [str(Path(catalog.root) / p) for v in catalog.items[column].tolist()
            for p in _paths_of(v)]


def _timed(encoder: Encoder, inputs: list[str]) -> dict[str, float]:
    """Encode ``inputs`` batch by batch: wall time, and the encoder's busy time."""
    t0 = time.perf_counter()
    first_t, done, errors = None, 0, 0
    for batch in encoder.encode_batches(inputs):
        done += len(batch.indices)
        errors += len(batch.errors)
        if first_t is None:
            first_t = time.perf_counter()
    wall = time.perf_counter() - t0
    # busy: seconds spent inside the encoder (Ray: summed over actors, from the actors)
    busy = getattr(encoder, "busy_seconds", None) or wall
    return {"inputs": done, "errors": errors, "wall_s": round(wall, 2),
            "per_second": round(done / wall, 2), "busy_s": round(busy, 2),
            "per_busy_second": round(done / busy, 2),
            "first_batch_s": round((first_t or t0) - t0, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=480)
    parser.add_argument("--repeat", type=int, default=5,
                        help="Encode each input this many times (no cache), so start-up does "
                             "not dominate.")
    parser.add_argument("--modality", nargs="+", default=["text", "image", "audio"])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="fuserec-engines-"))
    t0 = time.perf_counter()
    generate_demo_catalog(work / "catalog", DemoCatalogSpec(n_items=args.items, n_users=10,
                                                            seed=11, inject_errors=False),
                          progress=False)
    catalog, _ = load_catalog(work / "catalog", progress=False)
    print(f"catalog: {len(catalog.items)} items ({time.perf_counter() - t0:.1f} s to "
          f"generate); cpus: {os.cpu_count()}; load average {os.getloadavg()[0]:.1f}")

    # the local runs come first, before Ray starts: the audio encoder forks worker processes,
    # and forking a process that holds Ray's gRPC connections can hang it
    results: dict[str, dict[str, dict[str, float]]] = {m: {} for m in args.modality}
    inputs = {m: _inputs(catalog, m) * args.repeat for m in args.modality}
    specs = {m: EncoderSpec(DEFAULT_ENCODERS[m]) for m in args.modality}

    def run(modality: str, name: str, build) -> None:
        t0 = time.perf_counter()
        encoder = build()
        setup = time.perf_counter() - t0
        m = results[modality][name] = {**_timed(encoder, inputs[modality]),
                                       "setup_s": round(setup, 2)}
        encoder.close()
        print(f"{modality:6s} {name:6s} {m['inputs']:5d} inputs  wall {m['wall_s']:6.1f} s "
              f"{m['per_second']:6.1f}/s  busy {m['busy_s']:6.1f} s "
              f"({m['per_busy_second']:6.1f}/busy-s; first batch after "
              f"{m['first_batch_s']:.1f} s; setup {setup:.1f} s)", flush=True)

    for modality in args.modality:
        run(modality, "local", specs[modality].build)  # the real encoder, all cores
    t0 = time.perf_counter()
    ray2 = get_engine("ray", workers=2, num_cpus=2)
    ray1 = get_engine("ray", workers=1)
    print(f"ray start: {time.perf_counter() - t0:.1f} s")
    for modality in args.modality:
        for name, engine in (("ray-1", ray1), ("ray-2", ray2)):
            run(modality, name, lambda e=engine, s=specs[modality]: e.encoder(s))
        r = results[modality]
        r["ratios"] = {
            "wall_ray2_over_ray1": round(r["ray-2"]["per_second"] / r["ray-1"]["per_second"], 2),
            "wall_ray2_over_local": round(r["ray-2"]["per_second"] / r["local"]["per_second"], 2),
            "wall_ray1_over_local": round(r["ray-1"]["per_second"] / r["local"]["per_second"], 2),
        }
        q = r["ratios"]
        print(f"{modality:6s} ratios (wall): ray-2/ray-1 {q['wall_ray2_over_ray1']:.2f}x, "
              f"ray-2/local {q['wall_ray2_over_local']:.2f}x, "
              f"ray-1/local {q['wall_ray1_over_local']:.2f}x", flush=True)
    ray1.close()
    ray2.close()

    print("\nper-core rate (inputs per actor-busy-second; each actor has one CPU, one thread):")
    for modality, r in results.items():
        print(f"  {modality:6s} ray-1 {r['ray-1']['per_busy_second']:.1f}/s/core, "
              f"ray-2 {r['ray-2']['per_busy_second']:.1f}/s/core")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    out = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
           "items": len(catalog.items), "results": results}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
