"""A real Celery worker with a profile's rendered settings on a real redis-server: throughput and redelivery.

    python3 benchmarks/worker_bench.py [--env dev] [--pool default] [--jobs 3000]

1. Throughput of short jobs (a Redis INCR each) through one worker of the pool, at the rendered
   worker_prefetch_multiplier and at 4 and 16: prefetch 1 is the rendered default, right for long tasks;
   this shows what it costs on short ones.
2. Redelivery: the pool re-rendered with visibility_timeout 3s; a worker is SIGKILLed mid-task and a new
   one started at once: the time until the job finishes is the visibility timeout plus kombu's sweep.

Uses tests/fixtures/worker_app.py (the app the tests run) and writes benchmarks/results/workers.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from generators import localservers, workers  # noqa: E402
from generators.loader import Source, deep_merge, load_source  # noqa: E402
from generators.render import render  # noqa: E402
from generators.validation import profile_from_source  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def bundle_for(env: str, pool: str, overrides: dict[str, Any]) -> Any:
    source = load_source(ROOT / "profiles" / f"{env}.yaml")
    merged = Source(data=deep_merge(source.data, {"workers": {"pools": {pool: overrides}}}),
                    locations=source.locations, files=source.files)
    return render(profile_from_source(merged, env))


def start_worker(bundle: Any, pool: str, port: int, folder: Path, name: str) -> subprocess.Popen[bytes]:
    (folder / workers.CONFIG_FILE).write_text(bundle.files[f"workers/{pool}/{workers.CONFIG_FILE}"])
    env = {**os.environ, "CELERY_CONFIG_MODULE": "celeryconfig",
           "PYTHONPATH": f"{folder}:{ROOT / 'tests' / 'fixtures'}", "CELERY_BROKER_URL": f"redis://127.0.0.1:{port}/0"}
    deployment = next(o for o in bundle.objects if o["kind"] == "Deployment"
                      and o["metadata"]["name"] == workers.worker_name(pool))
    command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
    command = [sys.executable, "-m", "celery", "-A", "worker_app", *command[3:]]
    command[command.index("--hostname") + 1] = f"{name}@bench"
    return subprocess.Popen(command, env=env, stdout=(folder / f"{name}.log").open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def kill(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(10)


def wait(predicate: Any, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.02)
    raise TimeoutError


def app(port: int, folder: Path) -> Any:
    os.environ.update({"CELERY_CONFIG_MODULE": "celeryconfig", "CELERY_BROKER_URL": f"redis://127.0.0.1:{port}/0"})
    sys.path[:0] = [str(folder), str(ROOT / "tests" / "fixtures")]
    import worker_app

    return worker_app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="dev")
    parser.add_argument("--pool", default="default")
    parser.add_argument("--jobs", type=int, default=3000)
    args = parser.parse_args()
    results: dict[str, Any] = {"env": args.env, "pool": args.pool, "jobs": args.jobs, "throughput": []}
    base = bundle_for(args.env, args.pool, {})
    server = localservers.start_redis(base.files[workers.QUEUE_REDIS_CONF])
    folder = Path(tempfile.mkdtemp(prefix="perfstack-workers-"))
    r = redis.Redis(port=server.port)
    try:
        (folder / workers.CONFIG_FILE).write_text(base.files[f"workers/{args.pool}/{workers.CONFIG_FILE}"])
        tasks = app(server.port, folder)
        rendered = base.profile.workers.pools[args.pool]
        for prefetch in sorted({rendered.prefetch_multiplier, 4, 16}):
            # The visibility timeout above prefetch x time_limit, as the checks demand at any prefetch.
            bundle = bundle_for(args.env, args.pool, {"prefetch_multiplier": prefetch, "visibility_timeout": "2h"})
            key = f"p{prefetch}"
            for _ in range(args.jobs):  # a full queue before the worker starts: the drain rate alone
                tasks.noop.apply_async((key,), queue=rendered.queues[0])
            worker = start_worker(bundle, args.pool, server.port, folder, key)
            try:
                done = f"{key}:done"
                wait(lambda done=done: int(r.get(done) or 0) >= 1, 60)
                started = time.monotonic()
                wait(lambda done=done: int(r.get(done) or 0) >= args.jobs, 600)
                seconds = time.monotonic() - started
                row = {"prefetch_multiplier": prefetch, "concurrency": rendered.concurrency,
                       "rendered": prefetch == rendered.prefetch_multiplier, "seconds": round(seconds, 2),
                       "jobs_per_second": round((args.jobs - 1) / seconds, 1)}
                results["throughput"].append(row)
                print(row)
            finally:
                kill(worker)
        # Redelivery after a SIGKILL, at a 3 s visibility timeout.
        bundle = bundle_for(args.env, args.pool, {"visibility_timeout": "3s", "time_limit": "2s",
                                                  "retry_backoff_max": "2s"})
        first = start_worker(bundle, args.pool, server.port, folder, "first")
        wait(lambda: tasks.app.control.inspect(timeout=0.5).ping(), 60)
        tasks.slow_once.apply_async(("redeliver",), queue=rendered.queues[0])
        wait(lambda: r.get("redeliver:started"), 30)
        kill(first)
        killed = time.monotonic()
        second = start_worker(bundle, args.pool, server.port, folder, "second")
        try:
            wait(lambda: r.get("redeliver:done"), 60)
            results["redelivery"] = {"visibility_timeout_s": 3, "restore_interval_s": 1,
                                     "seconds_from_kill_to_done": round(time.monotonic() - killed, 2),
                                     "attempts": int(str(r.get("redeliver:attempts")))}
            print(results["redelivery"])
        finally:
            kill(second)
    finally:
        server.cleanup()
    (RESULTS / "workers.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"wrote {RESULTS / 'workers.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
