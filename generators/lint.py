"""Safety lints: literal secrets anywhere, and a production lint run by `validate`.

Two kinds of refusal live here:

- `literal_secrets(source)`: a password, token or key written as a value in a profile. Profiles are
  committed and reviewed; secrets are only ever *referenced* (`secrets.*` names a Kubernetes Secret
  and its key; the Pulumi program fills the Secret from secret stack config). Every profile, every
  environment. The message never repeats the value.
- `lint(profile, source)`: settings that are legal but unsafe in production (environment `prod`,
  `production`, `prod-*`, or `production: true`): `trust` authentication, PgBouncer without client TLS
  in an exposed environment, Redis without protected-mode or a password, PgBouncer's admin console
  reachable from outside the cluster, and unbounded (0) statement, query and idle-in-transaction timeouts.

PgBouncer's admin console is the virtual `pgbouncer` database on PgBouncer's one listener. In
Kubernetes that listener must accept the pod network (listen_addr 0.0.0.0), so "localhost" means
"not reachable from outside the cluster": with `exposed: true` the console would be reachable from
outside, and `pgbouncer.admin_users` must be empty (admins then `kubectl exec` into the pod and connect
over its Unix socket as user `pgbouncer`, which PgBouncer admits without a password for its own OS
user). `stats_users` stay allowed: they can only run SHOW commands.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .errors import Problem, ProfileError
from .loader import Source, dotted

if TYPE_CHECKING:
    from .bundle import Bundle
    from .profile import Profile

# ---------------------------------------------------------------- literal secrets
# Parts of a key name (split on _ - .) that mean "this value is a credential", and credential-shaped
# names ("token" alone is too common: llm_time_to_first_token_p95 is a latency).
SECRET_WORDS = frozenset({"password", "passwd", "pwd", "passphrase", "secret", "apikey", "credential",
                          "credentials", "requirepass", "masterauth"})
SECRET_NAME = re.compile(r"(^|[_-])(api|private|access|secret|signing|encryption)[_-]?key$"
                         r"|(^|[_-])((api|auth|access|bearer|refresh|session|client|hf|github|gitlab|slack|openai)[_-]?)?token$")
# PostgreSQL parameters named after passwords that hold none.
NOT_SECRETS = frozenset({"password_encryption", "ssl_passphrase_command_supports_reload"})
# Values that carry a credential inside them: a URL with user:password@, or libpq's password=.
URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]*:[^/\s@]+@", re.IGNORECASE)
KEYWORD_PASSWORD = re.compile(r"(^|[\s;,])(password|passwd|requirepass|masterauth)\s*[=:]\s*\S", re.IGNORECASE)

HOW_TO_REFERENCE = (
    "secrets are never written in a profile: reference a Kubernetes Secret instead, e.g. "
    "`secrets: {postgres_password: {secret: postgres-credentials, key: password}}`, and set its value "
    "as Pulumi secret config (`pulumi config set --secret perfstack:postgresPassword`)")


def _secret_key(name: str) -> bool:
    lowered = name.lower()
    if lowered in NOT_SECRETS:
        return False
    return bool(SECRET_WORDS.intersection(re.split(r"[_\-.\s]+", lowered)) or SECRET_NAME.search(lowered))


def _secret_value(value: str) -> bool:
    return bool(URL_WITH_PASSWORD.search(value) or KEYWORD_PASSWORD.search(value))


def _walk(value: Any, path: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, path + (index,))


def literal_secrets(source: Source) -> list[Problem]:
    """Every place a profile writes a credential as a value (outside `secrets:`, which only names Secrets)."""
    problems = []
    for path, value in _walk(source.data, ()):
        if not path or path[0] == "secrets":
            continue
        name = path[-1]
        if (isinstance(name, str) and _secret_key(name) and not isinstance(value, (dict, list, bool))
                and value not in ("", None)):
            what = f"'{name}' holds a literal credential"
        elif isinstance(value, str) and _secret_value(value):
            what = "this value embeds a password (user:password@ in a URL, or password=)"
        else:
            continue
        problems.append(_problem(source, [dotted(path)], f"{what}; {HOW_TO_REFERENCE}"))
    return problems


# ---------------------------------------------------------------- production lint
def is_production(profile: Profile) -> bool:
    env = profile.environment
    return bool(getattr(profile, "production", False)) or env in ("prod", "production") or env.startswith("prod-")


def _problem(source: Source | None, keys: list[str], message: str) -> Problem:
    """Located on the first key the profile wrote (else the nearest written parent of the first key)."""
    if source is None:
        return Problem(message=message, key=keys[0])
    where = None
    for key in keys:
        where = source.locations.get(tuple(_split(key)))
        if where:
            break
    where = where or source.locate(tuple(_split(keys[0])))
    file = where.file if where else (source.files[-1] if source.files else "<profile>")
    return Problem(message=message, file=file, line=where.line if where else 1,
                   column=where.column if where else None, key=keys[0])


def _split(key: str) -> list[str | int]:
    return [int(p) if p.isdigit() else p for p in key.split(".")]


def _zero_duration(text: str) -> bool:
    return bool(re.fullmatch(r"\s*'?0+(\.0+)?\s*(us|ms|s|min|m|h|d)?'?\s*", str(text)))


def findings(profile: Profile, bundle: Bundle) -> list[tuple[list[str], str]]:
    """(keys, message) for every production refusal, from the profile and what it renders."""
    out: list[tuple[list[str], str]] = []
    pb = profile.pgbouncer
    if pb.auth_type == "trust":
        out.append((["pgbouncer.auth_type"], "PgBouncer `trust` auth lets anyone who reaches it in without a "
                    "password; use scram-sha-256"))
    for obj in bundle.objects:
        hba = obj.get("spec", {}).get("postgresql", {}).get("pg_hba", []) if isinstance(obj.get("spec"), dict) else []
        if any(re.search(r"\btrust\b", str(line)) for line in hba):
            out.append((["kubernetes.postgres"], f"{obj['kind']}/{obj['metadata']['name']} has a pg_hba `trust` rule; "
                        "PostgreSQL must authenticate with scram-sha-256"))
    for name in bundle.target_settings("postgres"):
        if name in ("hba_file", "ident_file"):
            out.append(([f"postgres.settings.{name}"], f"{name} replaces the managed authentication rules; "
                        "production PostgreSQL authenticates with scram-sha-256 from the operator's pg_hba"))
    if profile.exposed and not pb.client_tls:
        out.append((["pgbouncer.client_tls", "exposed"], "the environment is exposed (exposed: true) but PgBouncer "
                    "does not require client TLS; set pgbouncer.client_tls: true"))
    if profile.exposed and pb.admin_users:
        out.append((["pgbouncer.admin_users", "exposed"], "PgBouncer's admin console shares its listener, which is "
                    "reachable from outside the cluster (exposed: true); set pgbouncer.admin_users: [] and "
                    "administer through `kubectl exec` over the pod's Unix socket"))
    redis_conf = bundle.target_settings("redis")
    protected = redis_conf.get("protected-mode")
    if protected is None or protected.text != "yes":
        out.append((["redis"], "Redis must run with protected-mode yes"))
    redis_pods = [o for o in bundle.objects if o.get("kind") in ("Deployment", "StatefulSet")
                  and o["metadata"]["name"] == "redis"]
    for obj in redis_pods:
        commands = [c.get("command", []) + c.get("args", []) for c in obj["spec"]["template"]["spec"]["containers"]]
        if not any("--requirepass" in command for command in commands):
            out.append((["secrets.redis_password", "redis"], f"{obj['kind']}/redis starts Redis without a password "
                        "(--requirepass from the Secret named by secrets.redis_password)"))
    timeouts = {
        "postgres.statement_timeout": "statement_timeout",
        "postgres.idle_in_transaction_session_timeout": "idle_in_transaction_session_timeout",
    }
    pg = bundle.target_settings("postgres")
    for key, name in timeouts.items():
        setting = pg.get(name)
        if setting is not None and _zero_duration(setting.text):
            overridden = name in {k.lower() for k in profile.postgres.settings}
            where = [f"postgres.settings.{_written_name(profile, name)}"] if overridden else [key]
            out.append((where, f"{name} = 0 never times out; production needs a bound (e.g. 30s)"))
    if pb.query_timeout == 0:
        out.append((["pgbouncer.query_timeout"], "query_timeout = 0 never times out; production needs a bound just "
                    "above postgres.statement_timeout"))
    return out


def _written_name(profile: Profile, name: str) -> str:
    return next((k for k in profile.postgres.settings if k.lower() == name), name)


def lint(profile: Profile, source: Source | None = None, bundle: Bundle | None = None) -> None:
    """Raise ProfileError naming file, line and key for each production refusal (nothing outside production)."""
    if not is_production(profile):
        return
    if bundle is None:
        from .render import render

        bundle = render(profile, source)
    problems = [_problem(source, keys, f"prod lint: {message}") for keys, message in findings(profile, bundle)]
    if problems:
        raise ProfileError(problems)
