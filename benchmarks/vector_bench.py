"""HNSW recall/latency curves of a profile's vector index on both real engines, one run on one machine.

    python3 benchmarks/vector_bench.py [--env prod] [--vectors 20000] [--queries 200] [--quick]

Runs `perfstack bench vector`'s measurement (generators/vector_bench.py) on Chroma embedded and on pgvector
(PostgreSQL 16 + pgvector from the pgserver wheel), ef_search 10..320 at the profile's m and ef_construction,
plus m 8 and 32 on Chroma; prints the tables, the pick per engine, and writes
benchmarks/results/vector.json and benchmarks/results/vector-<engine>.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generators import vector_bench  # noqa: E402
from generators.validation import load_profile  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="prod")
    parser.add_argument("--vectors", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="5,000 vectors, 50 queries, profile's m only")
    args = parser.parse_args()
    if args.quick:
        args.vectors, args.queries = 5000, 50
    profile, _ = load_profile(args.env, ROOT / "profiles")
    assert profile.vector is not None
    started = time.perf_counter()
    out: dict[str, object] = {"machine": f"{os.cpu_count()} CPUs, {platform.machine()}", "env": args.env}
    for engine, ms in (("chroma", () if args.quick else (8, profile.vector.m, 32)), ("pgvector", ())):
        report = vector_bench.run(profile, vector_bench.Options(
            vectors=args.vectors, queries=args.queries, engine=engine, m=ms,
            ef_search=vector_bench.DEFAULT_EF_SEARCH), lambda message: print(message, file=sys.stderr))
        print(vector_bench.format_report(report))
        vector_bench.plot(report, RESULTS / f"vector-{engine}.png")
        out[engine] = report.to_dict()
    out["seconds"] = round(time.perf_counter() - started, 1)
    (RESULTS / "vector.json").write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    print(f"wrote {RESULTS / 'vector.json'} and vector-*.png in {out['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
