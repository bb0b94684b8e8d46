"""Start real PostgreSQL, PgBouncer, Redis and Prometheus servers on loopback from rendered files.

Used by `perfstack bench` and by the test suite. PostgreSQL and PgBouncer refuse to run as root, so
when running as root they run as the `postgres` user, in folders that user owns. Ports and auth are
rewritten for local use only; the rendered tuning settings are used as they are.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PG_BIN_CANDIDATES = [Path(f"/usr/lib/postgresql/{v}/bin") for v in (18, 17, 16, 15, 14, 13)]
RUN_AS = "postgres"


class ServerError(RuntimeError):
    """A local server could not be started."""


def pg_bin_dir() -> Path:
    for candidate in PG_BIN_CANDIDATES:
        if (candidate / "postgres").exists():
            return candidate
    found = shutil.which("postgres")
    if found:
        return Path(found).resolve().parent
    raise ServerError("PostgreSQL server binaries not found (apt-get install postgresql)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_root() -> bool:
    return os.geteuid() == 0


def _prefix() -> list[str]:
    return ["runuser", "-u", RUN_AS, "--"] if _as_root() else []


def make_workdir(prefix: str = "perfstack-") -> Path:
    """A temp folder the server user owns (pytest's tmp_path sits under a root-only folder)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    if _as_root():
        entry = pwd.getpwnam(RUN_AS)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def _chown(path: Path) -> None:
    if _as_root():
        entry = pwd.getpwnam(RUN_AS)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _write(path: Path, text: str) -> None:
    path.write_text(text)
    _chown(path)


def _wait(predicate, timeout: float, what: str, log: Path | None = None) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
    raise ServerError(f"{what} did not become ready in {timeout:.0f}s\n{tail}")


def _await_listening(server: Any, process: subprocess.Popen[bytes], port: int, what: str, log: Path) -> None:
    """Wait until a started server listens on its port; clean it up and raise if it exits or never listens."""
    try:
        _wait(lambda: process.poll() is not None or _port_open(port), 20, what, log)
        if process.poll() is not None:
            raise ServerError(f"{what} exited with {process.returncode}\n"
                              f"{log.read_text(errors='replace')[-3000:] if log.exists() else ''}")
    except ServerError:
        server.cleanup()
        raise


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL when it has not exited within 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# ---------------------------------------------------------------- PostgreSQL
@dataclass
class Postgres:
    workdir: Path
    port: int
    bin_dir: Path

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def log(self) -> Path:
        return self.workdir / "postgres.log"

    def dsn(self, user: str = "postgres", dbname: str = "postgres", password: str | None = None) -> str:
        auth = f" password={password}" if password else ""
        return f"host=127.0.0.1 port={self.port} user={user} dbname={dbname}{auth} connect_timeout=5"

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*_prefix(), str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), *args],
                              capture_output=True, text=True, check=check, timeout=120)

    def restart(self) -> None:
        self.ctl("restart", "-w", "-t", "60", "-m", "fast", "-l", str(self.log))

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self.ctl("stop", "-w", "-t", "30", "-m", "fast", check=False)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_postgres(conf_text: str | None = None, workdir: Path | None = None, port: int | None = None,
                   extra_conf: str = "", bin_dir: Path | None = None) -> Postgres:
    """initdb a fresh cluster, include the rendered postgresql.conf, and start it on loopback."""
    workdir = workdir or make_workdir("perfstack-pg-")
    server = Postgres(workdir=workdir, port=port or free_port(), bin_dir=bin_dir or pg_bin_dir())
    result = subprocess.run([*_prefix(), str(server.bin_dir / "initdb"), "-D", str(server.data_dir), "-U", "postgres",
                             "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"],
                            capture_output=True, text=True, timeout=180)
    if result.returncode != 0:
        raise ServerError(f"initdb failed: {result.stderr}")
    configure_postgres(server, conf_text, extra_conf)
    result = server.ctl("start", "-w", "-t", "60", "-l", str(server.log), check=False)
    if result.returncode != 0:
        raise ServerError(f"PostgreSQL did not start: {result.stderr}\n{server.log.read_text(errors='replace')[-3000:]}")
    return server


def configure_postgres(server: Postgres, conf_text: str | None, extra_conf: str = "") -> None:
    """The rendered settings first, then the local-only connection settings after them."""
    data = server.data_dir
    _write(data / "perfstack.conf", conf_text or "")
    socket_dir = server.workdir / "sockets"
    socket_dir.mkdir(exist_ok=True)
    _chown(socket_dir)
    _write(data / "local.conf", f"listen_addresses = '127.0.0.1'\nport = {server.port}\n"
           f"unix_socket_directories = '{socket_dir}'\n{extra_conf}")
    main_conf = data / "postgresql.conf"
    text = main_conf.read_text()
    if "include 'perfstack.conf'" not in text:
        _write(main_conf, text + "\ninclude 'perfstack.conf'\ninclude 'local.conf'\n")


def postgres_accepts(setting: str, value: str, bin_dir: Path | None = None, workdir: Path | None = None) -> str | None:
    """Ask `postgres -C` whether it accepts `setting = value`; None when it does, else its complaint."""
    bin_dir = bin_dir or pg_bin_dir()
    own = workdir is None
    workdir = workdir or make_workdir("perfstack-pgc-")
    try:
        data = workdir / "data"
        if not (data / "PG_VERSION").exists():
            subprocess.run([*_prefix(), str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
                           capture_output=True, text=True, check=True, timeout=180)
        _write(data / "probe.conf", f"{setting} = {value}\n")
        main = data / "postgresql.conf"
        if "include 'probe.conf'" not in main.read_text():
            _write(main, main.read_text() + "\ninclude 'probe.conf'\n")
        result = subprocess.run([*_prefix(), str(bin_dir / "postgres"), "-D", str(data), "-C", setting],
                                capture_output=True, text=True, timeout=60)
        return None if result.returncode == 0 else (result.stderr.strip() or f"exit {result.returncode}")
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)


# ---------------------------------------------------------------- PgBouncer
@dataclass
class PgBouncer:
    workdir: Path
    port: int
    process: subprocess.Popen[bytes]
    ini_path: Path
    log: Path

    def dsn(self, dbname: str = "app", user: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={user} dbname={dbname} connect_timeout=5"

    def admin_dsn(self, user: str = "postgres") -> str:
        return self.dsn("pgbouncer", user)

    def stop(self) -> None:
        stop_process(self.process)  # SIGTERM: PgBouncer's immediate shutdown; SIGINT waits for clients to leave

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _minor_version(argv: list[str], pattern: str, what: str) -> str:
    """The local server's minor version ("1.18") from its --version output, as the profile's key names it."""
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    match = re.search(pattern, result.stdout)
    if not match:
        raise ServerError(f"cannot read the {what} version: {result.stdout!r} {result.stderr!r}")
    return f"{match[1]}.{match[2]}"


def pgbouncer_version() -> str:
    """The local PgBouncer's minor version ("1.18"), as `pgbouncer.version` names it."""
    return _minor_version(["pgbouncer", "--version"], r"PgBouncer (\d+)\.(\d+)", "PgBouncer")


def redis_version() -> str:
    """The local redis-server's minor version ("7.0"), as `redis.version` names it."""
    return _minor_version(["redis-server", "--version"], r"v=(\d+)\.(\d+)", "Redis")


def rewrite_ini(text: str, pgbouncer_settings: dict[str, str | None], database_spec: str | None = None) -> str:
    """Replace (or add) [pgbouncer] keys, and point every [databases] entry at a local server."""
    out: list[str] = []
    section = ""
    seen: set[str] = set()
    for line in text.splitlines():
        stripped = line.strip()
        header = re.fullmatch(r"\[(\w+)\]", stripped)
        if header:
            if section == "pgbouncer":
                out += [f"{k} = {v}" for k, v in pgbouncer_settings.items() if k not in seen]
            section = header.group(1)
            out.append(line)
            continue
        match = re.match(r"^\s*([\w.*]+)\s*=\s*(.*)$", line)
        if match and not stripped.startswith((";", "#")):
            key = match.group(1)
            if section == "pgbouncer" and key in pgbouncer_settings:
                seen.add(key)
                value = pgbouncer_settings[key]
                if value is not None:
                    out.append(f"{key} = {value}")
                continue
            if section == "databases" and database_spec is not None:
                out.append(f"{key} = {database_spec} dbname={_dbname(match.group(2), key)}")
                continue
        out.append(line)
    if section == "pgbouncer":
        out += [f"{k} = {v}" for k, v in pgbouncer_settings.items() if k not in seen and v is not None]
    return "\n".join(out) + "\n"


def _dbname(spec: str, default: str) -> str:
    match = re.search(r"dbname=(\S+)", spec)
    return match.group(1) if match else default


def start_pgbouncer(ini_text: str, postgres: Postgres, workdir: Path | None = None, port: int | None = None,
                    admin_user: str = "postgres", userlist_text: str | None = None) -> PgBouncer:
    """Run the rendered pgbouncer.ini with ports and auth rewritten for a local, trusted PostgreSQL.

    With `userlist_text` the rendered authentication (auth_type, auth_user, auth_query) is kept as it is and
    the userlist holds that text (the auth_user's line, as the Secret would)."""
    workdir = workdir or make_workdir("perfstack-pgb-")
    port = port or free_port()
    userlist = workdir / "userlist.txt"
    _write(userlist, userlist_text if userlist_text is not None else f'"{admin_user}" ""\n"perfstack_ro" ""\n')
    log = workdir / "pgbouncer.log"
    auth: dict[str, str | None] = {} if userlist_text is not None else {
        "auth_type": "trust", "auth_user": None, "auth_query": None}
    local = {
        "listen_addr": "127.0.0.1", "listen_port": str(port), "unix_socket_dir": str(workdir),
        "auth_file": str(userlist), **auth,
        "logfile": str(log), "pidfile": str(workdir / "pgbouncer.pid"),
        "admin_users": f"{admin_user}", "stats_users": f"{admin_user},perfstack_ro",
    }
    ini = rewrite_ini(ini_text, local, f"host=127.0.0.1 port={postgres.port}")
    ini_path = workdir / "pgbouncer.ini"
    _write(ini_path, ini)
    # Started as the server user directly (not through runuser, which does not pass signals on): stop()
    # must reach PgBouncer itself, or it outlives the test.
    as_user: dict[str, Any] = {"user": RUN_AS, "group": pwd.getpwnam(RUN_AS).pw_gid, "extra_groups": []} if _as_root() else {}
    process = subprocess.Popen(["pgbouncer", str(ini_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               **as_user)
    server = PgBouncer(workdir=workdir, port=port, process=process, ini_path=ini_path, log=log)
    _await_listening(server, process, port, "PgBouncer", log)
    return server


# ---------------------------------------------------------------- Redis
@dataclass
class Redis:
    workdir: Path
    port: int
    process: subprocess.Popen[bytes]
    conf_path: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        stop_process(self.process)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_redis(conf_text: str, workdir: Path | None = None, port: int | None = None) -> Redis:
    """Run redis-server with the rendered redis.conf; port, bind and dir are given on the command line."""
    workdir = workdir or make_workdir("perfstack-redis-")
    port = port or free_port()
    conf_path = workdir / "redis.conf"
    conf_path.write_text(conf_text)
    log = workdir / "redis.log"
    process = subprocess.Popen(["redis-server", str(conf_path), "--port", str(port), "--bind", "127.0.0.1",
                                "--dir", str(workdir), "--daemonize", "no", "--logfile", str(log)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = Redis(workdir=workdir, port=port, process=process, conf_path=conf_path)
    _await_listening(server, process, port, "redis-server", log)
    return server


# ---------------------------------------------------------------- Prometheus
@dataclass
class Prometheus:
    workdir: Path
    port: int
    process: subprocess.Popen[bytes]
    extra: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        for proc in [self.process, *self.extra]:
            stop_process(proc)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_prometheus(config_yaml: str, rule_files: dict[str, str] | None = None, workdir: Path | None = None,
                     port: int | None = None) -> Prometheus:
    """Run Prometheus with a config (rule_files named relative to the workdir) on loopback."""
    workdir = workdir or Path(tempfile.mkdtemp(prefix="perfstack-prom-"))
    port = port or free_port()
    for name, text in (rule_files or {}).items():
        (workdir / name).write_text(text)
    config = workdir / "prometheus.yml"
    config.write_text(config_yaml)
    log = workdir / "prometheus.log"
    with open(log, "wb") as handle:
        process = subprocess.Popen(["prometheus", f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
                                    f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle"],
                                   cwd=workdir, stdout=handle, stderr=subprocess.STDOUT)
    server = Prometheus(workdir=workdir, port=port, process=process)

    def ready() -> bool:
        if process.poll() is not None:
            return True
        try:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    try:
        _wait(ready, 30, "Prometheus", log)
        if process.poll() is not None:
            raise ServerError(f"Prometheus exited with {process.returncode}\n{log.read_text(errors='replace')[-3000:]}")
    except ServerError:
        server.cleanup()
        raise
    return server
