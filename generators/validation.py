"""The one validation boundary: a profile file becomes a validated Profile here, or a ProfileError.

Loading validates once, in this order: literal secrets (refused first, so no later message echoes a
credential), `postgres.settings` names, versions and managed values, then the model's types. Every
problem is `file:line:col: key: message`, located by `Source.problem` (the one locator).
profile.py holds the model only.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import re
from collections.abc import Iterator
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from . import formats, models, serverversions, types, units
from .errors import Problem, ProfileError
from .loader import NOT_INHERITED, Source, dotted, load_source, resolve_profile_path
from .pgversions import NEWEST, OLDEST, library_list_problem, value_problem, version_problem
from .postgres import MANAGED_KINDS, parse_override
from .profile import Postgres, Profile
from .redis import maxmemory_bytes as redis_maxmemory_bytes

# ---------------------------------------------------------------- literal secrets
# Parts of a key name (split on _ - .) that mean "this value is a credential", and credential-shaped
# names ("token" alone is too common: llm_time_to_first_token_p95 is a latency).
SECRET_WORDS = frozenset({"password", "passwd", "pwd", "passphrase", "secret", "apikey", "credential",
                          "credentials", "requirepass", "masterauth"})
SECRET_NAME = re.compile(r"(^|[_-])(api|private|access|secret|signing|encryption)[_-]?key$"
                         r"|(^|[_-])((api|auth|access|bearer|refresh|session|client|hf|github|gitlab|slack|openai)[_-]?)?token$")
# PostgreSQL parameters named after passwords that hold none.
NOT_SECRETS = frozenset({"password_encryption", "ssl_passphrase_command_supports_reload"})
# Values that carry a credential inside them, whatever key holds them (a host, an image, a label, a URL):
# - a URL with userinfo (scheme://user:password@ or scheme://token@), and user:password@host without a scheme
#   (not an image's tag@sha256:digest);
URL_WITH_USERINFO = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s@?#]+@", re.IGNORECASE)
BARE_USERINFO = re.compile(r"(^|[\s,;=(\[\"'<])[^\s:@/,;=\"']+:[^\s@/]+@(?!(sha256|sha384|sha512):)[A-Za-z0-9\[]",
                           re.IGNORECASE)
# - libpq's password= and sslpassword=, Redis's requirepass, any *password/*secret/*token/api key written as
#   key=value (or key: value for the password words), and credentials in a query string (?access_token=, &key=);
KEYWORD_PASSWORD = re.compile(r"(^|[\s;,?&])[\w.-]*(password|passwd|pwd|passphrase|requirepass|masterauth)\s*[=:]\s*[^\s&;,]",
                              re.IGNORECASE)
KEYWORD_TOKEN = re.compile(r"(^|[\s;,?&])[\w.-]*(secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?)"
                           r"\s*=\s*[^\s&;,]", re.IGNORECASE)
QUERY_CREDENTIAL = re.compile(r"[?&](key|sig|signature|auth|jwt|code|x-amz-signature|x-goog-signature)=[^\s&#]",
                              re.IGNORECASE)
# - an HTTP Authorization value (Basic/Bearer/Token scheme), and a bare base64 user:password (basic auth in a
#   label or an annotation, where spaces and '=' cannot stand).
AUTH_HEADER = re.compile(r"\b(basic|bearer)\s+([A-Za-z0-9+/=._~-]{8,})", re.IGNORECASE)
BASE64_WORD = re.compile(r"[A-Za-z0-9+/_-]{8,}={0,2}")

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
    if len(value) > 4096:  # no profile string is this long; keep the scan bounded anyway
        value = value[:4096]
    return bool(URL_WITH_USERINFO.search(value) or BARE_USERINFO.search(value) or KEYWORD_PASSWORD.search(value)
                or KEYWORD_TOKEN.search(value) or QUERY_CREDENTIAL.search(value) or any(_auth_header(m) for m in AUTH_HEADER.finditer(value))
                or any(_basic_credential(word) for word in BASE64_WORD.findall(value)))


def _auth_header(match: re.Match[str]) -> bool:
    """`Basic <base64 user:password>`, or `Bearer <token>` (a token has digits, or is long; prose has neither)."""
    word = match.group(2)
    if match.group(1).lower() == "basic":
        return _basic_credential(word)
    return any(c.isdigit() for c in word) or len(word) >= 20


def _basic_credential(word: str) -> bool:
    """A base64 word that decodes to printable `user:password` (what an Authorization: Basic header carries)."""
    padded = word + "=" * (-len(word) % 4)
    try:
        decoded = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        return False
    return re.fullmatch(rb"[\x21-\x39\x3b-\x7e]{1,64}:[\x21-\x7e]{3,}", decoded) is not None


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
            what = ("this value embeds a credential (user:password@ or a token in a URL, password= or "
                    "sslpassword=, a token in a query string, or basic/bearer auth)")
        elif isinstance(name, str) and _secret_value(name):  # named by its mapping: the key itself is the secret
            problems.append(source.problem([dotted(path[:-1])], f"a key of this mapping embeds a credential; "
                                           f"{HOW_TO_REFERENCE}"))
            continue
        else:
            continue
        problems.append(source.problem([dotted(path)], f"{what}; {HOW_TO_REFERENCE}"))
    return problems


# ---------------------------------------------------------------- loading
@cache
def known_postgres_parameters() -> frozenset[str]:
    text = resources.files("generators").joinpath("data/postgres_parameters.txt").read_text()
    return frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def _model_at(path: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model class that owns the mapping at `path` (for did-you-mean suggestions)."""
    model: Any = Profile
    parts = iter(path)
    for part in parts:
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or not isinstance(part, str):
            return None
        field = model.model_fields.get(part)
        if field is None:
            return None
        model = _unwrap(field.annotation)
        if getattr(field.annotation, "__origin__", None) is dict:
            next(parts, None)  # a mapping of named models (workers.pools): the next part is a name
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    for arg in getattr(annotation, "__args__", ()) or ():
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return annotation


def _problem_for(error: Any, source: Source) -> Problem:
    # pydantic puts union members and validator wrappers ('int', 'function-after[...]') in loc: drop them.
    loc = tuple(part for part in error["loc"] if not (isinstance(part, str) and (
        "[" in part or part.startswith("function-")
        or part in ("int", "float", "str", "bool", "dict", "constrained-str"))))
    kind = error["type"]
    message = error["msg"].removeprefix("Value error, ")
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1])
        known = sorted(parent.model_fields) if parent else []
        hint = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        message = "unknown key" + (f"; did you mean '{hint[0]}'?" if hint else f"; expected one of: {', '.join(known)}")
    elif kind == "missing":
        message = "required key is missing"
    elif kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(error.get("ctx", {}).get("expected", "")))
        hint = difflib.get_close_matches(str(error.get("input")), choices, n=1)
        message = f"{message}, got {error.get('input')!r}" + (f"; did you mean '{hint[0]}'?" if hint else "")
    elif "input" in error and kind not in ("value_error",) and not isinstance(error["input"], dict):
        message = f"{message} (got {error['input']!r})"
    if loc == ("environment",) and "environment" not in source.data:
        message = (f"defaults to the file name {error.get('input')!r}, which is not a valid environment name "
                   "(lower-case letters, digits and '-'): set `environment:` in the profile or rename the file")
    return source.problem_at(loc, message)


_PARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")


def _check_postgres_settings(source: Source) -> list[Problem]:
    settings = source.data.get("postgres", {}).get("settings") if isinstance(source.data.get("postgres"), dict) else None
    if not isinstance(settings, dict):
        return []
    known = known_postgres_parameters()
    known_sorted = sorted(known)
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    unknown = 0
    for name, value in settings.items():
        key = f"postgres.settings.{name}"
        lowered = name.lower() if isinstance(name, str) else ""
        if not isinstance(name, str) or not _PARAMETER_NAME.fullmatch(name):
            problems.append(source.problem([key], "not a PostgreSQL parameter name (letters, digits and _, or "
                                           "extension.name)"))
        elif lowered in seen:
            problems.append(source.problem([key], f"the same parameter as postgres.settings.{seen[lowered]} "
                                           "(PostgreSQL names are case-insensitive): give it once"))
        elif lowered in known and (why := _version_problem(name, source)) is not None:
            problems.append(source.problem([key], f"{why}; remove the override or change postgres.version"))
        elif lowered not in known and "." not in name:  # dotted names are extension settings (pg_stat_statements.max)
            unknown += 1  # did-you-mean costs ~1 ms a name: only the first few get one (9,000 would take 13 s)
            hint = difflib.get_close_matches(lowered, known_sorted, n=1) if unknown <= MAX_HINTS else []
            problems.append(source.problem([key], "unknown PostgreSQL parameter"
                                           + (f"; did you mean '{hint[0]}'?" if hint else "")))
        elif lowered in known and (why := _value_problem(lowered, value, source)) is not None:
            problems.append(source.problem([key], why))
        elif lowered in MANAGED_KINDS and isinstance(value, (str, int, float, bool)):
            try:
                parse_override(lowered, value)
            except ValueError as exc:
                problems.append(source.problem([key], str(exc)))
        elif isinstance(value, str) and (why := library_list_problem(name, value)) is not None:
            problems.append(source.problem([key], why))
        elif isinstance(value, str) and types.unprintable(value) is None:
            # what postgresql.conf and ALTER SYSTEM cannot carry (the type refuses control characters itself)
            try:
                formats.pg_conf_value(value)
                formats.pg_sql_value(lowered, value)
            except formats.FormatError as exc:
                problems.append(source.problem([key], str(exc)))
        if isinstance(name, str):
            seen.setdefault(lowered, name)
    return problems


def _check_server_settings(source: Source, path: tuple[str, ...], component: serverversions.Component) -> list[Problem]:
    """`pgbouncer.settings` / `redis.settings` (and `workers.redis.settings`): each name one the chosen version
    knows, each value of its type and range (serverversions.parse)."""
    section: Any = source.data
    for part in path:
        section = section.get(part) if isinstance(section, dict) else None
    if not isinstance(section, dict) or not isinstance(section.get("settings"), dict):
        return []
    version = section.get("version", component.default)
    if version not in component.versions:
        return []  # the model reports a bad version itself
    problems = []
    for name, value in section["settings"].items():
        key = ".".join((*path, "settings", str(name)))
        why = serverversions.name_problem(component, str(name), str(version))
        if why is None:
            try:
                serverversions.parse(component, str(name), value)
            except ValueError as exc:
                why = str(exc)
        if why is not None:
            problems.append(source.problem([key], why))
    return problems


MAX_HINTS = 20  # unknown postgres.settings names that get a did-you-mean


def _settings_version(source: Source) -> int | None:
    version = source.data["postgres"].get("version", Postgres.model_fields["version"].default)
    if not isinstance(version, int) or isinstance(version, bool) or not OLDEST <= version <= NEWEST:
        return None  # the model reports a bad version itself
    return version


def _value_problem(name: str, value: Any, source: Source) -> str | None:
    version = _settings_version(source)
    return None if version is None else value_problem(name, value, version)


def _version_problem(name: str, source: Source) -> str | None:
    version = source.data["postgres"].get("version", Postgres.model_fields["version"].default)
    if not isinstance(version, int) or isinstance(version, bool) or not OLDEST <= version <= NEWEST:
        return None  # the model reports a bad version itself
    return version_problem(name.lower(), version)


def _identity_problems(source: Source, file_name: str) -> list[Problem]:
    """Every profile writes its own namespace, one that extends another also its own environment (never
    another environment's identity), and every profile is named after its environment unless it says otherwise.
    A profile without a parent may leave `environment` to its file name."""
    leaf = source.files[-1] if source.files else "<profile>"
    problems = []
    for key in ("environment", "namespace") if len(source.files) > 1 else ("namespace",):
        where = source.locations.get((key,))
        if where is None or where.file != leaf:
            inherited = f" instead of inheriting {source.data[key]!r} from {where.file}" if where else ""
            problems.append(Problem(
                message=f"a deployed profile sets its own {key}{inherited}; a profile that only holds shared "
                        "values says `abstract: true`", file=leaf, line=1, key=key))
    env, where = source.data.get("environment"), source.locations.get(("environment",))
    stated = source.data.get("environment_matches_file_name", True)
    if isinstance(stated, bool) and stated and where is not None and where.file == leaf and isinstance(env, str) \
            and env != file_name:
        problems.append(Problem(
            message=f"environment {env!r} differs from the file name {file_name!r}: rename the file to {env}.yaml, "
                    "or state `environment_matches_file_name: false`", file=leaf, line=where.line,
            column=where.column, key="environment"))
    for key in NOT_INHERITED:
        if key in source.data and not isinstance(source.data[key], bool):
            where = source.locations.get((key,))
            problems.append(Problem(message=f"must be true or false (got {source.data[key]!r})", file=leaf,
                                    line=where.line if where else 1, column=where.column if where else None,
                                    key=key))
    return problems


def _rounding_problems(profile: Profile, source: Source) -> list[Problem]:
    """Values a server would read in a coarser unit than the profile gives, where rounding changes the meaning:
    Redis and the vector cache read whole seconds (500ms becomes 0: never time out), and a Redis maxmemory
    under 1 MiB is rendered as 0, which Redis reads as unlimited."""
    problems = []
    whole_seconds = [("redis.timeout", profile.redis.timeout, "Redis reads whole seconds; 0 means never"),
                     ("redis.tcp_keepalive", profile.redis.tcp_keepalive, "Redis reads whole seconds; 0 means off")]
    if profile.vector is not None:
        whole_seconds.append(("vector.cache.ttl", profile.vector.cache.ttl, "the cache reads whole seconds"))
    for key, ms, why in whole_seconds:
        if ms % 1000:
            problems.append(source.problem([key], f"{units.format_duration(ms)} is not a whole number of seconds "
                                           f"({why}): it would be rendered as {ms // 1000}s; give whole seconds"))
    maxmemory = redis_maxmemory_bytes(profile)
    explicit_zero = not isinstance(profile.redis.maxmemory, float) and maxmemory == 0  # the checks' own case
    if maxmemory < units.MIB and not explicit_zero:
        what = ("it would be rendered as 0, which Redis reads as no limit at all" if maxmemory == 0 else
                "less than Redis's own overhead, so every write would be refused or evicted")
        problems.append(source.problem(["redis.maxmemory", "hardware.redis.memory"], (
            f"redis.maxmemory comes to {maxmemory} bytes, under 1 MiB: {what}; give at least 1MiB")))
    return problems


# ---------------------------------------------------------------- names perfstack renders
# Objects perfstack renders besides the app's own (tests/test_types.py renders every example and
# checks this list covers each object name). CloudNativePG's Cluster adds its -rw, -ro, -r Services.
RENDERED_NAMES = ("llm", "llm-config", "pgbouncer", "redis", "postgres", "postgres-rw", "postgres-ro", "postgres-r",
                  "postgres-settings", "perfstack-alerts", "worker-redis", "grafana-dashboard")


def rendered_names(profile: Profile) -> set[str]:
    """Every object name perfstack renders that is not the app's (its HPA and ConfigMap)."""
    names = set(RENDERED_NAMES)
    if profile.llm is not None:
        names.add(profile.llm.model_cache.claim)
    if profile.workers is not None:
        names.update(f"worker-{pool}" for pool in profile.workers.pools)
        names.add("celery-exporter")  # scrape.CELERY_EXPORTER: its Deployment, Service and ServiceMonitor
        if profile.workers.redis is not None:
            names.add(profile.workers.redis.name)
    return names


def _name_collisions(profile: Profile, source: Source) -> list[Problem]:
    """app.deployment names the app's HPA and ConfigMap and selects its pods as `<deployment>-*`: it must
    not be, nor prefix, a name perfstack renders (an HPA `llm` would scale the LLM server, `pgbouncer` PgBouncer)."""
    problems = []
    deployment = profile.app.deployment
    names = rendered_names(profile)
    clash = sorted(n for n in names if n == deployment or n.startswith(deployment + "-")
                   or deployment + "-performance" == n)
    if clash:
        problems.append(source.problem(["app.deployment"], (
            f"{deployment!r} collides with {', '.join(repr(n) for n in clash)}, which perfstack renders (the app's "
            f"HPA and ConfigMap are named after it and its pods are selected as {deployment}-*): name the app's "
            "Deployment something else")))
    workers = profile.workers
    queue = workers.redis if workers is not None else None
    if workers is not None and queue is not None:
        others = set(RENDERED_NAMES) | {f"worker-{pool}" for pool in workers.pools}
        if profile.llm is not None:
            others.add(profile.llm.model_cache.claim)
        if queue.name in others:
            problems.append(source.problem(["workers.redis.name"], (
                f"{queue.name!r} is a name perfstack already renders (its StatefulSet and Service would replace "
                "that one): name the queue's Redis something else, e.g. redis-queue")))
    return problems


def profile_from_source(source: Source, default_environment: str) -> Profile:
    data = dict(source.data)
    if data.pop("abstract", False) is True:
        where = source.locations.get(("abstract",))
        raise ProfileError([Problem(
            message="this profile is abstract (shared values only): render or deploy a profile that extends it",
            file=source.files[-1] if source.files else "<profile>", line=where.line if where else 1,
            column=where.column if where else None, key="abstract")])
    data.pop("environment_matches_file_name", None)
    data.setdefault("environment", default_environment)
    if secrets := literal_secrets(source):
        raise ProfileError(secrets)
    problems = (_check_postgres_settings(source)
                + _check_server_settings(source, ("pgbouncer",), serverversions.PGBOUNCER)
                + _check_server_settings(source, ("redis",), serverversions.REDIS)
                + _check_server_settings(source, ("workers", "redis"), serverversions.REDIS))
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        located = {p.key for p in problems}  # a bad postgres.settings name: its own message, given once
        problems = _merge_alternatives([p for p in (_problem_for(error, source) for error in exc.errors())
                                        if p.key not in located]) + problems
        raise ProfileError(_in_reading_order(problems, source)) from None
    if problems:
        raise ProfileError(_in_reading_order(problems, source))
    if rounded := _rounding_problems(profile, source):
        raise ProfileError(_in_reading_order(rounded, source))
    if identity := _identity_problems(source, default_environment):  # on a profile that is otherwise valid
        raise ProfileError(_in_reading_order(identity, source))
    if collisions := _name_collisions(profile, source):
        raise ProfileError(collisions)
    return _with_architecture(profile, source)


def _with_architecture(profile: Profile, source: Source) -> Profile:
    """llm.model names a catalog model or points at its config.json: resolve it now, so render never fails on it.

    A config path is relative to the profile file that wrote it; the model keeps it made absolute."""
    if profile.llm is None:
        return profile
    model = profile.llm.model
    if model.config is not None:
        where = source.locations.get(("llm", "model", "config"))
        base = Path(where.file).parent if where else Path.cwd()
        path = (base / model.config).resolve()
        try:
            models.read_config(str(path), model.name)
        except models.ArchitectureError as exc:
            raise ProfileError([source.problem(["llm.model.config"], str(exc))]) from None
        llm = profile.llm.model_copy(update={"model": model.model_copy(update={"config": str(path)})})
        return profile.model_copy(update={"llm": llm})
    if models.lookup(model.name) is None:
        close = difflib.get_close_matches(model.name, models.catalog_names(), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ProfileError([source.problem(["llm.model.name"], (
            f"model {model.name!r} is not in perfstack's catalog{hint} Point llm.model.config at its config.json, "
            f"or use one of: {', '.join(models.catalog_names())}"))])
    return profile


def _merge_alternatives(problems: list[Problem]) -> list[Problem]:
    """A value that fits no member of a union gives one error per member: say it once, as alternatives."""
    groups: dict[tuple[str, int | None, int | None, str], list[Problem]] = {}
    for problem in problems:
        groups.setdefault((problem.file, problem.line, problem.column, problem.key), []).append(problem)
    merged = []
    for same in groups.values():
        texts = list(dict.fromkeys(p.message for p in same))
        if len(texts) == 1:
            merged.append(same[0])
            continue
        got = re.search(r" \(got .*\)$", texts[0])
        suffix = got.group(0) if got and all(t.endswith(got.group(0)) for t in texts) else ""
        # "Input should be a valid integer, unable to parse string as an integer (got 'x')" -> "a valid integer"
        parts = [re.sub(r", unable to .*$", "", t.removesuffix(suffix)) for t in texts]
        parts = [parts[0]] + [part.removeprefix("Input should be ") for part in parts[1:]]
        merged.append(Problem(" or ".join(parts) + suffix, same[0].file, same[0].line, same[0].column, same[0].key))
    return merged


def _in_reading_order(problems: list[Problem], source: Source) -> list[Problem]:
    """Parent files first (the order extends reads them), then by line and column."""
    order = {name: index for index, name in enumerate(source.files)}
    return sorted(problems, key=lambda p: (order.get(p.file, len(order)), p.line or 0, p.column or 0))


def load_profile(name: str, profiles_dir: Path = Path("profiles")) -> tuple[Profile, Source]:
    """ENV name or path -> validated Profile and its Source (for locations in later checks)."""
    path = resolve_profile_path(name, profiles_dir)
    source = load_source(path)
    return profile_from_source(source, path.stem), source


