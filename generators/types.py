"""The string types of the profile: every string a profile may hold has one of these (no bare `str`).

Each type is the grammar of the place the value ends up, checked the way that place checks it:
Kubernetes names as the API server validates them (apimachinery's validation.IsDNS1123Label,
IsDNS1123Subdomain, IsQualifiedName, IsValidLabelValue, IsConfigMapKey), image references by the
distribution/reference grammar, metric names by Prometheus's, a Hugging Face model id as
huggingface_hub's validate_repo_id. A value outside its type is refused at load with file:line:key
(validation.py maps pydantic's errors to locations); the emitters (formats.py) still escape or refuse
on their own, so a type that is wider than a file's syntax cannot smuggle a directive into it.

Patterns are written for pydantic's Rust regex engine: `$` is the end of the text (a trailing newline
does not match), and classes are spelled in ASCII ([0-9], not \\d, which would be Unicode).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, StringConstraints, WithJsonSchema

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN = rf"{_LABEL}(\.{_LABEL})*"
_QUALIFIED_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"


# ---------------------------------------------------------------- Kubernetes
DNS1123Label = Annotated[str, StringConstraints(pattern=rf"^{_LABEL}$", max_length=63)]
"""A DNS-1123 label: Namespaces, Services, most object names (at most 63 characters)."""


def _subdomain_labels(value: str) -> str:
    if any(len(part) > 63 for part in value.split(".")):
        raise ValueError("each dot-separated part of a DNS name must be at most 63 characters")
    return value


DNS1123Subdomain = Annotated[str, StringConstraints(pattern=rf"^{_SUBDOMAIN}$", max_length=253)]
"""A DNS-1123 subdomain: Secret, ConfigMap, PersistentVolumeClaim, StorageClass names (at most 253)."""


def _label_key(value: str) -> str:
    prefix, _, name = value.rpartition("/")
    if len(name) > 63:
        raise ValueError("the name part of a label key must be at most 63 characters")
    if prefix and len(prefix) > 253:
        raise ValueError("the prefix of a label key must be at most 253 characters")
    return value


LabelKey = Annotated[str, StringConstraints(pattern=rf"^({_SUBDOMAIN}/)?{_QUALIFIED_NAME}$", max_length=317),
                     AfterValidator(_label_key)]
"""A label or annotation key: an optional DNS subdomain prefix and '/', then a name of at most 63."""
LabelValue = Annotated[str, StringConstraints(pattern=rf"^({_QUALIFIED_NAME})?$", max_length=63)]
"""A label value: empty, or at most 63 of letters, digits, '-', '_', '.', alphanumeric at both ends."""
Namespace = DNS1123Label


def _port_name(value: str) -> str:
    if "--" in value or not any(c.isalpha() for c in value):
        raise ValueError("a port name has at least one letter and no two hyphens in a row (IANA_SVC_NAME)")
    return value


PortName = Annotated[str, StringConstraints(pattern=rf"^{_LABEL}$", max_length=15), AfterValidator(_port_name)]
"""A container port's name (IANA_SVC_NAME): at most 15 of a-z, 0-9 and '-', with a letter, no '--'."""
UrlPath = Annotated[str, StringConstraints(pattern=r"^(/[A-Za-z0-9._~-]+)+$|^/$", max_length=200)]
"""An HTTP path: '/'-separated segments of unreserved characters (RFC 3986), nothing to escape."""
SecretName = Annotated[str, StringConstraints(pattern=rf"^{_SUBDOMAIN}$", max_length=253),
                       AfterValidator(_subdomain_labels)]


def _secret_key(value: str) -> str:
    if value in (".", "..") or value.startswith(".."):
        raise ValueError("a Secret key must not be '.', '..' or start with '..'")
    return value


SecretKey = Annotated[str, StringConstraints(pattern=r"^[-._a-zA-Z0-9]+$", max_length=253),
                      AfterValidator(_secret_key)]
"""A key of a Secret or ConfigMap's data (IsConfigMapKey)."""

# ---------------------------------------------------------------- models and images
_HF_PART = r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,94}[A-Za-z0-9])?"


def _no_double(value: str) -> str:
    if "--" in value or ".." in value:
        raise ValueError("a model id must not contain '--' or '..' (huggingface_hub's validate_repo_id)")
    return value


HfModelId = Annotated[str, StringConstraints(pattern=rf"^{_HF_PART}/{_HF_PART}$", max_length=193),
                      AfterValidator(_no_double)]
"""A Hugging Face model id: org/name, letters, digits, '-', '_', '.' (at most 96 each)."""
_OLLAMA_NAME = r"([A-Za-z0-9][A-Za-z0-9._-]*/){0,2}[A-Za-z0-9][A-Za-z0-9._-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
OllamaModel = Annotated[str, StringConstraints(pattern=rf"^{_OLLAMA_NAME}$", max_length=200)]
"""An Ollama model name: [host/][namespace/]name[:tag] (llama3.1:8b, hf.co/org/Model-GGUF:Q4_K_M)."""
ModelName = Annotated[str, StringConstraints(pattern=rf"^({_HF_PART}/{_HF_PART}|{_OLLAMA_NAME})$", max_length=200),
                      AfterValidator(_no_double)]
"""A model: a Hugging Face id (vLLM) or an Ollama name; llm.server decides which (profile.Llm)."""
HF_MODEL_ID = re.compile(rf"{_HF_PART}/{_HF_PART}")

# distribution/reference's grammar (reference/regexp.go)
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(\.|_|__|-+)"
_PATH_COMPONENT = rf"{_ALNUM}({_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_COMPONENT}(\.{_DOMAIN_COMPONENT})*(:[0-9]+)?"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_NAME = rf"({_DOMAIN}/)?{_PATH_COMPONENT}(/{_PATH_COMPONENT})*"


def _image_name_length(value: str) -> str:
    name = value.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last) + last.index(":")]
    if len(name) > 255:
        raise ValueError("an image repository name must be at most 255 characters")
    return value


ImageRef = Annotated[str, StringConstraints(pattern=rf"^{_NAME}(:{_TAG})?(@{_DIGEST})?$", max_length=512),
                     AfterValidator(_image_name_length)]
"""An OCI image reference: [registry[:port]/]path[:tag][@digest] (no credentials can fit)."""

# ---------------------------------------------------------------- Prometheus
MetricName = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$", max_length=200)]
"""A Prometheus metric name."""
PromLabelValue = Annotated[str, StringConstraints(pattern=rf"^{_LABEL}$", max_length=63)]
"""A value perfstack matches a Prometheus label against (job, namespace): a DNS-1123 label, like the
Service or Namespace it comes from."""

# ---------------------------------------------------------------- network
_IPV4 = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}"
_HOST = rf"({_IPV4}|{_SUBDOMAIN})"
Hostname = Annotated[str, StringConstraints(pattern=rf"^{_HOST}$", max_length=253), AfterValidator(_subdomain_labels)]
"""A DNS name (lower case, RFC 1123) or an IPv4 address."""
_PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
HostPort = Annotated[str, StringConstraints(pattern=rf"^{_HOST}:{_PORT}$", max_length=260)]
"""host:port (a DNS name or IPv4 address, a port 1-65535)."""
ListenAddr = Annotated[str, StringConstraints(pattern=rf"^(\*|{_IPV4}|{_SUBDOMAIN})(,(\*|{_IPV4}|{_SUBDOMAIN}))*$",
                                              max_length=1000)]
"""Addresses to listen on: '*', IPv4 addresses or host names, comma-separated (PgBouncer's listen_addr)."""
# RFC 3986 path/query characters, without quotes, '\\', '@' (userinfo look-alikes), '%' only as an escape.
_URL_PATH = r"(/([A-Za-z0-9._~!$&()*+,;=:-]|%[0-9A-Fa-f]{2})*)*"
_URL_QUERY = r"(\?([A-Za-z0-9._~!$&()*+,;=:/?-]|%[0-9A-Fa-f]{2})*)?"


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.username is not None or parts.password is not None:
        raise ValueError("a URL must not carry credentials (user:password@)")
    return value


HttpUrl = Annotated[str, StringConstraints(pattern=rf"^https?://{_HOST}(:{_PORT})?{_URL_PATH}{_URL_QUERY}$",
                                           max_length=2000), AfterValidator(_url)]
"""An http or https URL: no credentials, no fragment, a DNS name or IPv4 host."""

# ---------------------------------------------------------------- PostgreSQL and PgBouncer
PgIdentifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=63)]
"""A PostgreSQL name that needs no quoting (database, role): letters, digits, '_', at most 63 bytes."""
PgParameterName = Annotated[str, StringConstraints(
    pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$", max_length=63)]
"""A PostgreSQL parameter name (pg_stat_statements.max for an extension's)."""
SqlRole = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]
"""A PostgreSQL role the application logs in as: lower case, so it reads the same quoted or not."""
SqlTable = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,61}[a-z0-9]$")]
"""A PostgreSQL table that needs no quoting, and a Chroma collection name (3 to 63 characters)."""

# ---------------------------------------------------------------- text
# Characters that end a line for some reader of a rendered file (YAML 1.1 counts NEL, U+2028 and
# U+2029), and every other control or format character: none of them belongs in a one-line value.
_LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


def unprintable(value: str) -> str | None:
    """The first character of `value` that is a control, format or line-breaking character, if any."""
    for char in value:
        if char in _LINE_BREAKS or unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            return char
    return None


def _one_line(value: str) -> str:
    if (char := unprintable(value)) is not None:
        raise ValueError(f"must stay on one line: no newline, control or format character (got {char!r})")
    return value


OneLine = Annotated[str, AfterValidator(_one_line), WithJsonSchema(
    {"type": "string", "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029]*$"})]
"""Free text on one line (a description, a setting's text value): no control or line-breaking character."""
ShortText = Annotated[OneLine, StringConstraints(max_length=200)]
Word = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][-A-Za-z0-9_.]*$", max_length=100)]
"""One word of letters, digits, '-', '_', '.' (a GPU model, an instance class)."""
PythonRef = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
                                                     r"(:[A-Za-z_][A-Za-z0-9_]*)?$", max_length=200)]
"""A Python module (and attribute): celery -A's app."""
QueueName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,100}$")]
"""A Redis list name that is also safe inside a PromQL regex alternation."""
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
AbsolutePath = Annotated[str, StringConstraints(pattern=r"^(/[A-Za-z0-9._+@,=-]+)+/?$|^/$", max_length=1000)]
"""An absolute node path of portable file-name characters."""


def _relative_json(value: str) -> str:
    if (char := unprintable(value)) is not None:
        raise ValueError(f"a file path must not hold control characters (got {char!r})")
    return value


JsonPath = Annotated[str, StringConstraints(pattern=r"^[^\x00]+\.json$", max_length=1000),
                     AfterValidator(_relative_json)]
"""A config.json path, relative to the profile that names it."""

# Every string type the profile may use; tests/test_types.py fails on any other str field.
STRING_TYPES: tuple[Any, ...] = (
    DNS1123Label, DNS1123Subdomain, LabelKey, LabelValue, SecretName, SecretKey, HfModelId, OllamaModel,
    ModelName, ImageRef, MetricName, PromLabelValue, Hostname, HostPort, ListenAddr, HttpUrl, PgIdentifier,
    PgParameterName, SqlRole, SqlTable, OneLine, ShortText, Word, PythonRef, QueueName, CurrencyCode, AbsolutePath, JsonPath,
    PortName, UrlPath,
)
