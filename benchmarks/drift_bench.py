"""Time `perfstack drift` over PostgreSQL + PgBouncer + Redis + Prometheus on loopback (target: under 1 s).

Starts the four servers from the rendered profile (generators/localservers.py), then times drift runs:
the library call (`generators.drift.detect`, the bundle already rendered) and the whole command
(`perfstack drift ENV ...` in a fresh process: start-up, profile loading and rendering included).
Prints the figures; exits 1 when the median library run misses the target.

    python3 benchmarks/drift_bench.py [ENV] [--runs N]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from generators import localservers as ls
from generators.bench import adapt_profile, local_pgbouncer_version
from generators.drift import Endpoints, detect, format_text
from generators.render import render
from generators.validation import load_profile

TARGET_S = 1.0
RULES_FILE = "prometheus/alerts.yaml"
# Used only while the profile renders no rule file, so that Prometheus has rules to compare.
FALLBACK_RULES = """\
groups:
  - name: perfstack.postgres
    rules:
      - {alert: PostgresDown, expr: pg_up == 0, for: 1m, labels: {severity: critical}}
      - alert: PostgresConnectionsHigh
        expr: sum(pg_stat_activity_count) by (instance) / max(pg_settings_max_connections) by (instance) > 0.8
        for: 5m
        labels: {severity: warning}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("env", nargs="?", default="dev")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    profile, source = load_profile(args.env, Path("profiles"))
    # Rendered for the PgBouncer installed here, so it reads every setting (bench.adapt_profile's rule).
    profile = adapt_profile(profile, None, None, local_pgbouncer_version())[0]
    bundle = render(profile, source)
    if RULES_FILE not in bundle.files:
        bundle = dataclasses.replace(bundle, files={**bundle.files, RULES_FILE: FALLBACK_RULES})
    servers: list = []
    pgbouncer = None
    try:
        postgres = ls.start_postgres(bundle.files["postgres/postgresql.conf"])
        servers.append(postgres)
        with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
            conn.execute("CREATE ROLE perfstack_ro LOGIN IN ROLE pg_read_all_settings")
            conn.execute("ALTER ROLE perfstack_ro SET default_transaction_read_only = on")
        pgbouncer = ls.start_pgbouncer(bundle.files["pgbouncer/pgbouncer.ini"], postgres)
        redis = ls.start_redis(bundle.files["redis/redis.conf"])
        servers.append(redis)
        prometheus = ls.start_prometheus("global: {evaluation_interval: 1m}\nrule_files: [alerts.yaml]\n",
                                         {"alerts.yaml": bundle.files[RULES_FILE]})
        servers.append(prometheus)
        endpoints = Endpoints(postgres=postgres.dsn(user="perfstack_ro"),
                              pgbouncer=pgbouncer.admin_dsn(user="perfstack_ro"),
                              redis=redis.url, prometheus=prometheus.url)

        report = detect(bundle, endpoints)  # warm-up; also shows what is compared
        print(format_text(report), end="")
        timings = []
        for _ in range(args.runs):
            start = time.perf_counter()
            report = detect(bundle, endpoints)
            timings.append(time.perf_counter() - start)
        checked = sum(t.checked for t in report.targets)

        command = [sys.executable, "-c", "from generators.cli import main; main()", "drift", args.env, "--postgres", endpoints.postgres or "",
                   "--pgbouncer", endpoints.pgbouncer or "", "--redis", endpoints.redis or "",
                   "--prometheus", endpoints.prometheus or "", "--format", "json"]
        cli_timings = []
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run(command, capture_output=True, check=False)
            cli_timings.append(time.perf_counter() - start)
    finally:
        if pgbouncer is not None:
            pgbouncer.cleanup()
        for server in reversed(servers):
            server.cleanup()

    median = statistics.median(timings)
    print(f"drift over postgres + pgbouncer + redis + prometheus ({checked} settings and rules), {args.runs} runs:")
    print(f"  library (detect):  median {median * 1000:.1f} ms, min {min(timings) * 1000:.1f} ms, "
          f"max {max(timings) * 1000:.1f} ms  (target < {TARGET_S:.0f} s)")
    print(f"  command (perfstack drift, fresh process incl. render): median {statistics.median(cli_timings):.2f} s")
    return 0 if median < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
