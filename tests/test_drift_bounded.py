"""Drift is bounded whatever the live side does: one overall deadline (--timeout), bounded answers, and no
credential in any output.

The hostile servers are real sockets on 127.0.0.1 run by the test: one that answers one byte a second, one that
answers without end as fast as it can. Each stops by itself (a bounded number of seconds and bytes). `perfstack
drift` runs as its own process; its wall time and peak memory (its own and its children's, from os.wait4) are
measured from outside.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from .conftest import PROFILES, worktree_env

DEADLINE_S = 2.0
START_UP_S = 6.0  # Python, pydantic and one render before the deadline starts (loose: shared cores)
PEAK_RSS_LIMIT_KB = 1100 * 1024  # the target's child is limited to 1 GiB of address space


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss_kb: int


def drift(*args: str) -> Run:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "generators", "--profiles-dir", str(PROFILES), "drift",
                                 "prod", *args], stdout=out, stderr=err, env=worktree_env())
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            proc.returncode = 0
        seconds = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        return Run(os.waitstatus_to_exitcode(status), out.read().decode(errors="replace"),
                   err.read().decode(errors="replace"), seconds, usage.ru_maxrss)


class HostileServer:
    """Accepts connections on 127.0.0.1 and answers each with `answer(connection)`, for at most `limit_s`."""

    def __init__(self, prefix: bytes, mode: str, limit_s: float = 15.0):
        self.prefix, self.mode, self.limit_s = prefix, mode, limit_s
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        end = time.monotonic() + self.limit_s
        while not self.stop.is_set() and time.monotonic() < end:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._answer, args=(conn, end), daemon=True).start()

    def _answer(self, conn: socket.socket, end: float) -> None:
        conn.settimeout(1.0)
        try:
            try:
                conn.recv(65536)  # the request (or the first command)
            except OSError:
                pass
            if self.mode == "slow":  # one byte a second
                data = self.prefix + b"x" * 1000
                for byte in data:
                    if self.stop.is_set() or time.monotonic() > end:
                        break
                    conn.sendall(bytes([byte]))
                    self.sent += 1
                    time.sleep(1.0)
            else:  # endless, as fast as the reader takes it (capped at 8 GiB and the time limit)
                conn.sendall(self.prefix)
                block = b"9" * (1 << 20)
                while not self.stop.is_set() and time.monotonic() < end and self.sent < 8 * 1024**3:
                    conn.sendall(block)
                    self.sent += len(block)
        except OSError:
            pass  # the reader went away: that is the point
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def server() -> Iterator[list[HostileServer]]:
    made: list[HostileServer] = []
    yield made
    for item in made:
        item.close()


HTTP_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n"
REDIS_BULK = b"$1000000000000\r\n"  # a bulk string of 10^12 bytes follows


@pytest.mark.parametrize(("target", "prefix", "mode"), [
    ("--redis", b"*2\r\n", "slow"),
    ("--prometheus", HTTP_HEAD, "slow"),
    ("--redis", REDIS_BULK, "endless"),
    ("--prometheus", HTTP_HEAD + b'{"status": "success", "data": {"groups": [', "endless"),
], ids=["redis-one-byte-a-second", "prometheus-one-byte-a-second", "redis-endless", "prometheus-endless"])
def test_a_hostile_server_cannot_hold_drift_past_its_deadline(server: list[HostileServer], target: str,
                                                              prefix: bytes, mode: str) -> None:
    hostile = HostileServer(prefix, mode)
    server.append(hostile)
    url = f"redis://127.0.0.1:{hostile.port}/0" if target == "--redis" else f"http://127.0.0.1:{hostile.port}"
    result = drift(target, url, "--timeout", str(DEADLINE_S))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.seconds < DEADLINE_S + START_UP_S, f"drift took {result.seconds:.1f}s"
    assert result.peak_rss_kb < PEAK_RSS_LIMIT_KB, f"peak RSS {result.peak_rss_kb} kB"
    name = target.removeprefix("--")
    assert f"{name} (" in result.stdout and "ERROR" in result.stdout
    if mode == "slow":
        assert "deadline" in result.stdout
        assert hostile.sent < 10, "it should have been abandoned after a few bytes"
    else:
        assert hostile.sent > 10 * 1024 * 1024, "the server should have sent a lot before drift gave up"


def test_the_default_deadline_is_a_few_seconds_per_target(server: list[HostileServer]) -> None:
    hostile = HostileServer(b"*2\r\n", "slow")
    server.append(hostile)
    result = drift("--redis", f"redis://127.0.0.1:{hostile.port}/0")
    assert result.returncode == 2
    assert "deadline of 5s" in result.stdout
    assert result.seconds < 5 + START_UP_S


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


SECRET = "hunter2-s3cret-Value"


@pytest.mark.parametrize("args", [
    ["--redis", f"redis://:{SECRET}@127.0.0.1:{{port}}/0"],
    ["--redis", f"redis://default:{SECRET}@127.0.0.1:{{port}}/0"],
    ["--redis", f"redis://127.0.0.1:{{port}}/0?password={SECRET}"],
    ["--redis", f"rediss://127.0.0.1:{{port}}/0?db=0&password={SECRET}"],
    ["--prometheus", f"http://admin:{SECRET}@127.0.0.1:{{port}}"],
    ["--prometheus", f"http://127.0.0.1:{{port}}/?access_token={SECRET}"],
    ["--postgres", f"host=127.0.0.1 port={{port}} user=drift password={SECRET} dbname=postgres"],
    ["--postgres", f"host=127.0.0.1 port={{port}} user=drift password='{SECRET}' dbname=postgres"],
    ["--postgres", f"postgresql://drift:{SECRET}@127.0.0.1:{{port}}/postgres"],
    ["--postgres", f"postgresql://drift@127.0.0.1:{{port}}/postgres?password={SECRET}"],
    ["--postgres", f"host=127.0.0.1 port={{port}} user=drift sslpassword={SECRET} dbname=postgres"],
    ["--pgbouncer", f"postgresql://admin:{SECRET}@127.0.0.1:{{port}}/pgbouncer"],
], ids=["redis-userinfo", "redis-user-and-password", "redis-query", "rediss-query", "prometheus-userinfo",
        "prometheus-token", "dsn-password", "dsn-quoted-password", "uri-userinfo", "uri-query", "dsn-sslpassword",
        "pgbouncer-uri"])
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_credentials_never_reach_the_output(args: list[str], fmt: str) -> None:
    port = _closed_port()
    result = drift(args[0], args[1].format(port=port), "--format", fmt, "--timeout", "5")
    assert result.returncode == 2, result.stdout + result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert "hunter2" not in result.stdout + result.stderr
    if fmt == "json":
        report = json.loads(result.stdout)
        assert report["targets"][0]["status"] == "error"
        assert "***" in report["targets"][0]["endpoint"] or "password" not in report["targets"][0]["endpoint"]
