"""A real Celery worker (from PyPI) on a real redis-server, both started from what the profile renders.

- the worker runs the rendered Deployment's command with the rendered celeryconfig.py and reports those
  settings back (`inspect conf`);
- a worker killed mid-task (SIGKILL of the whole pod's processes) leaves its job unacknowledged, and a new
  worker gets it after the visibility timeout: not lost, run to the end;
- a failing task is retried max_retries times with the rendered backoff, then given up;
- the queue Redis under memory pressure (noeviction) refuses new jobs and keeps every queued one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_py

from generators import localservers, workers
from generators.render import render

from .conftest import variant

pytest.importorskip("celery")

FIXTURES = Path(__file__).parent / "fixtures"
POOL = "default"
# Short enough for a test, and still what the checks demand: visibility timeout above the time limit
# and above the longest retry countdown.
OVERRIDES = {"workers": {"pools": {POOL: {"visibility_timeout": "3s", "time_limit": "2s", "max_retries": 2,
                                          "retry_backoff": "1s", "retry_backoff_max": "2s", "concurrency": 2}}}}


@pytest.fixture(scope="module")
def bundle() -> Any:
    return render(variant("dev", OVERRIDES))


@pytest.fixture
def queue_redis(bundle: Any) -> Iterator[localservers.Redis]:
    server = localservers.start_redis(bundle.files[workers.QUEUE_REDIS_CONF])
    yield server
    server.cleanup()


def _env(bundle: Any, server: localservers.Redis, tmp_path: Path) -> dict[str, str]:
    (tmp_path / workers.CONFIG_FILE).write_text(bundle.files[f"workers/{POOL}/{workers.CONFIG_FILE}"])
    return {**os.environ, "CELERY_CONFIG_MODULE": "celeryconfig", "PYTHONPATH": f"{tmp_path}:{FIXTURES}",
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{server.port}/0"}


def _start_worker(bundle: Any, env: dict[str, str], name: str, log: Path) -> subprocess.Popen[bytes]:
    deployment = next(o for o in bundle.objects if o["kind"] == "Deployment"
                      and o["metadata"]["name"] == workers.worker_name(POOL))
    command = list(deployment["spec"]["template"]["spec"]["containers"][0]["command"])
    assert command[:3] == ["celery", "-A", "app.worker"]
    command = [sys.executable, "-m", "celery", "-A", "worker_app", *command[3:]]
    command[command.index("--hostname") + 1] = f"{name}@test"
    # A session of its own: killing its group is what a pod kill does to the main and pool processes.
    return subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _kill(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(10)


def _wait(predicate: Any, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    pytest.fail(f"timed out waiting for {what}\n{tail}")


def _app(env: dict[str, str]) -> Any:
    sys.path[:0] = [p for p in env["PYTHONPATH"].split(":") if p not in sys.path]
    os.environ.update({k: env[k] for k in ("CELERY_CONFIG_MODULE", "CELERY_BROKER_URL")})
    for module in ("worker_app", "celeryconfig"):
        sys.modules.pop(module, None)
    import worker_app  # noqa: PLC0415  (a fresh import reads this test's celeryconfig)

    return worker_app


def test_killed_worker_job_is_redelivered_after_the_visibility_timeout(bundle: Any, queue_redis: Any,
                                                                      tmp_path: Path) -> None:
    env = _env(bundle, queue_redis, tmp_path)
    tasks = _app(env)
    r = redis_py.Redis(port=queue_redis.port)
    log1, log2 = tmp_path / "worker1.log", tmp_path / "worker2.log"
    first = _start_worker(bundle, env, "first", log1)
    second = None
    try:
        # The worker runs with the rendered settings.
        _wait(lambda: tasks.app.control.inspect(timeout=0.5).ping(), 60, "the worker to answer", log1)
        conf = tasks.app.control.inspect(timeout=2).conf()["first@test"]
        assert conf["worker_prefetch_multiplier"] == 1
        assert conf["worker_concurrency"] == 2
        assert conf["task_acks_late"] is True and conf["task_reject_on_worker_lost"] is True
        assert conf["broker_transport_options"]["visibility_timeout"] == 3

        sent_at = time.monotonic()  # kombu's visibility timeout counts from the delivery, which comes after this
        tasks.slow_once.delay("job")
        _wait(lambda: r.get("job:started"), 20, "the task to start", log1)
        _kill(first)
        # Not acknowledged, not lost: the job waits in kombu's unacked hash, not in the list.
        assert r.hlen("unacked") == 1 and r.llen(POOL) == 0
        second = _start_worker(bundle, env, "second", log2)
        _wait(lambda: r.get("job:done"), 40, "the redelivered job to finish", log2)
        assert time.monotonic() - sent_at >= 3  # not before the visibility timeout
        assert int(r.get("job:attempts")) == 2 and int(r.get("job:done")) == 2
        _wait(lambda: r.hlen("unacked") == 0, 10, "the redelivered job's ack", log2)

        # Retries: max_retries 2 from the rendered task_annotations, then the task is given up.
        tasks.always_fails.delay("fails")
        _wait(lambda: int(r.get("fails:attempts") or 0) >= 3, 30, "three attempts", log2)
        time.sleep(3)  # a fourth attempt would come within the 2 s backoff cap
        assert int(r.get("fails:attempts")) == 3
    finally:
        _kill(first)
        if second is not None:
            _kill(second)


def test_noeviction_queue_refuses_new_jobs_and_keeps_queued_ones(bundle: Any) -> None:
    conf = bundle.files[workers.QUEUE_REDIS_CONF]
    assert "maxmemory-policy noeviction" in conf and "appendonly yes" in conf
    # The rendered file with a small maxmemory (a later line wins) so the test fills it in a second.
    server = localservers.start_redis(conf + "\nmaxmemory 3mb\n")
    try:
        from kombu import Connection

        r = redis_py.Redis(port=server.port)
        sent, refused = 0, None
        with Connection(f"redis://127.0.0.1:{server.port}/0") as connection:
            queue = connection.SimpleQueue(POOL)
            for _ in range(2000):
                try:
                    queue.put({"payload": "x" * 4096})
                    sent += 1
                except redis_py.exceptions.OutOfMemoryError as exc:  # Redis's OOM reply, as redis-py raises it
                    refused = exc
                    break
            queue.close()
        assert refused is not None and "maxmemory" in str(refused)
        assert sent > 100
        assert r.llen(POOL) == sent  # every accepted job is still queued
        assert r.info("stats")["evicted_keys"] == 0
    finally:
        server.cleanup()
