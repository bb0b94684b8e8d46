"""A stand-in for the user's app in the live alert test: it exports the metrics perfstack's API alerts read
(generators/metrics.py APP: prometheus-fastapi-instrumentator's HTTP names, perfstack's app_* names) with
the real client library, prometheus_client, at the buckets the profile declares (app.latency_buckets),
and keeps serving a healthy workload: fast 2xx requests, cache hits, quick database round trips.

Run as: python3 tests/app_metrics_server.py PORT BUCKETS_JSON  (BUCKETS_JSON: {"http": [...], ...}).
"""

from __future__ import annotations

import json
import sys
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


def main(port: int, buckets: dict[str, list[float]]) -> None:
    registry = CollectorRegistry()
    requests = Counter("http_requests", "requests by handler, method and status class", ["handler", "method", "status"],
                       registry=registry)
    duration = Histogram("http_request_duration_seconds", "request latency", ["handler", "method"],
                         buckets=buckets["http"], registry=registry)
    cache = Counter("app_cache_requests", "cache lookups", ["cache", "result"], registry=registry)
    pool = Gauge("app_db_pool_connections_in_use", "checked-out database connections", registry=registry)
    db = Histogram("app_db_query_duration_seconds", "one database round trip", buckets=buckets["db_query"],
                   registry=registry)
    Counter("app_db_query_errors", "database round trips that raised", registry=registry)
    llm = Histogram("app_llm_request_duration_seconds", "one LLM call", buckets=buckets["llm"], registry=registry)
    workflow = Histogram("app_workflow_duration_seconds", "one workflow run", buckets=buckets["workflow"],
                         registry=registry)
    start_http_server(port, addr="127.0.0.1", registry=registry)
    pool.set(1)
    fastest = {name: min(bounds) / 2 for name, bounds in buckets.items()}  # inside every first bucket
    while True:
        requests.labels("/items", "GET", "2xx").inc()
        duration.labels("/items", "GET").observe(fastest["http"])
        for name in ("query", "llm"):
            cache.labels(name, "hit").inc()
        db.observe(fastest["db_query"])
        llm.observe(fastest["llm"])
        workflow.observe(fastest["workflow"])
        time.sleep(0.05)


if __name__ == "__main__":
    main(int(sys.argv[1]), json.loads(sys.argv[2]))
