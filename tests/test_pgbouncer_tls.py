"""pgbouncer.client_tls: the rendered ini makes a real PgBouncer refuse clients without TLS and serve TLS
with the key and certificate mounted from the TLS Secret (here a self-signed pair in a temp folder)."""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from generators import localservers, pgbouncer
from generators.objects import workloads
from generators.validation import load_profile

from .conftest import parts_of

ROOT = Path(__file__).resolve().parent.parent


def tls_profile():  # type: ignore[no-untyped-def]
    # Rendered for the PgBouncer installed here (1.18), which must read every rendered setting.
    base, _ = load_profile("dev", ROOT / "profiles")
    return base.model_copy(update={"pgbouncer": base.pgbouncer.model_copy(update={
        "client_tls": True, "version": localservers.pgbouncer_version()})})


def test_client_tls_settings_and_mount() -> None:
    profile = tls_profile()
    keys = {s.key: s.text for s in pgbouncer.settings(profile)}
    assert keys["client_tls_sslmode"] == "require"
    assert keys["client_tls_cert_file"] == pgbouncer.TLS_CERT_FILE
    assert keys["client_tls_key_file"] == pgbouncer.TLS_KEY_FILE
    plain, _ = load_profile("dev", ROOT / "profiles")
    assert not any(s.key.startswith("client_tls") for s in pgbouncer.settings(plain))

    deployment = next(o for o in workloads.pgbouncer_objects(profile, parts_of(profile)) if o["kind"] == "Deployment")
    sources = deployment["spec"]["template"]["spec"]["volumes"][0]["projected"]["sources"]
    tls = [s["secret"] for s in sources if "secret" in s and s["secret"]["name"] == profile.secrets.pgbouncer_tls]
    assert tls and {i["path"] for i in tls[0]["items"]} == {"tls.crt", "tls.key"}


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[localservers.Postgres, localservers.PgBouncer]]:
    profile = tls_profile()
    pg = localservers.start_postgres()
    tls_dir = localservers.make_workdir("perfstack-tls-")
    cert, key = tls_dir / "tls.crt", tls_dir / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    if os.geteuid() == 0:
        entry = pwd.getpwnam(localservers.RUN_AS)
        for path in (cert, key):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    key.chmod(0o600)
    ini = pgbouncer.render(profile).files["pgbouncer/pgbouncer.ini"]
    # Only the Secret's mount paths change for the test; client_tls_sslmode stays as rendered.
    ini = localservers.rewrite_ini(ini, {"client_tls_cert_file": str(cert), "client_tls_key_file": str(key)})
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE app")
    bouncer = localservers.start_pgbouncer(ini, pg)
    try:
        yield pg, bouncer
    finally:
        bouncer.cleanup()
        pg.cleanup()
        subprocess.run(["rm", "-rf", str(tls_dir)], check=False)


def test_pgbouncer_refuses_clients_without_tls(servers: tuple[localservers.Postgres, localservers.PgBouncer]) -> None:
    _, bouncer = servers
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(bouncer.dsn() + " sslmode=disable", autocommit=True, prepare_threshold=None)


def test_pgbouncer_serves_tls_clients(servers: tuple[localservers.Postgres, localservers.PgBouncer]) -> None:
    _, bouncer = servers
    with psycopg.connect(bouncer.dsn() + " sslmode=require", autocommit=True, prepare_threshold=None) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.pgconn.ssl_in_use
