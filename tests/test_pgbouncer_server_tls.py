"""pgbouncer.server_tls_sslmode verify-full with the CA from secrets.postgres_ca, judged by PostgreSQL 15 with TLS
and PgBouncer 1.18: the rendered ini reaches the database over TLS and verifies its certificate; with a CA that did
not sign the server's certificate the same ini refuses to connect (so the verification is real). Only the CA
file's path changes for the test (the Secret's mount point, locally)."""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from generators import localservers, paths
from generators import pgbouncer as pgbouncer_target

from .conftest import local_pgbouncer_profile


def openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    key, cert = folder / f"{name}.key", folder / f"{name}.crt"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}",
            "-keyout", key, "-out", cert)
    return key, cert


@pytest.fixture(scope="module")
def tls_files() -> Iterator[dict[str, Path]]:
    folder = localservers.make_workdir("perfstack-server-tls-")
    try:
        ca_key, ca_cert = make_ca(folder, "test-ca")
        _, other_ca = make_ca(folder, "other-ca")
        key, csr, cert, ext = folder / "server.key", folder / "server.csr", folder / "server.crt", folder / "san.ext"
        ext.write_text("subjectAltName = DNS:localhost, IP:127.0.0.1\n")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", key, "-out", csr)
        openssl("x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial", "-days", "1",
                "-extfile", ext, "-out", cert)
        if os.geteuid() == 0:
            entry = pwd.getpwnam(localservers.RUN_AS)
            for path in folder.iterdir():
                os.chown(path, entry.pw_uid, entry.pw_gid)
        key.chmod(0o600)
        yield {"ca": ca_cert, "other_ca": other_ca, "cert": cert, "key": key}
    finally:
        subprocess.run(["rm", "-rf", str(folder)], check=False)


@pytest.fixture(scope="module")
def postgres(tls_files: dict[str, Path]) -> Iterator[localservers.Postgres]:
    server = localservers.start_postgres(extra_conf=f"ssl = on\nssl_cert_file = '{tls_files['cert']}'\n"
                                                    f"ssl_key_file = '{tls_files['key']}'\n")
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE app")
        yield server
    finally:
        server.cleanup()


def rendered_ini() -> str:
    profile = local_pgbouncer_profile("dev", {"pgbouncer": {"server_tls_sslmode": "verify-full"},
                                              "secrets": {"postgres_ca": {"secret": "postgres-ca", "key": "ca.crt"}}})
    return pgbouncer_target.render(profile).files[paths.PGBOUNCER_INI]


def test_the_ini_verifies_the_server_certificate(postgres: localservers.Postgres, tls_files: dict[str, Path]) -> None:
    ini = rendered_ini()
    assert "server_tls_sslmode = verify-full" in ini
    assert f"server_tls_ca_file = {paths.PGBOUNCER_SERVER_CA_FILE}" in ini
    server = localservers.start_pgbouncer(localservers.rewrite_ini(ini, {"server_tls_ca_file": str(tls_files["ca"])}),
                                          postgres)
    try:
        with psycopg.connect(server.dsn("app"), prepare_threshold=None) as conn:
            assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (True,)
    finally:
        server.cleanup()


def test_control_a_foreign_ca_is_refused(postgres: localservers.Postgres, tls_files: dict[str, Path]) -> None:
    ini = localservers.rewrite_ini(rendered_ini(), {"server_tls_ca_file": str(tls_files["other_ca"]),
                                                    "query_wait_timeout": "2", "server_login_retry": "1"})
    server = localservers.start_pgbouncer(ini, postgres)
    try:
        with pytest.raises(psycopg.OperationalError):
            with psycopg.connect(server.dsn("app"), prepare_threshold=None, connect_timeout=10) as conn:
                conn.execute("SELECT 1")
        log = server.log.read_text(errors="replace").lower()
        assert "certificate" in log or "tls" in log, log[-2000:]
    finally:
        server.cleanup()
