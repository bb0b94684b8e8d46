"""Every string field of the profile has a type from generators/types.py, each type accepts what its
destination accepts and refuses the rest, and app.deployment cannot take a name perfstack renders."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)

from generators import render, types
from generators.errors import ProfileError
from generators.profile import Profile
from generators.validation import load_profile, rendered_names

from .conftest import PROFILES


def _string_leaves(annotation: Any, path: str, seen: set[type]) -> typing.Iterator[tuple[str, Any]]:
    """(path, annotation) of every place a str can sit in the model: fields, list items, dict keys and values."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation in seen:
            return
        seen.add(annotation)
        for name, field in annotation.model_fields.items():
            # pydantic strips the outer Annotated into field.metadata: rebuild it to compare with the types
            rebuilt = typing.Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
            yield from _string_leaves(rebuilt, f"{path}.{name}" if path else name, seen)
        return
    if annotation is str:
        yield path, annotation
        return
    if typing.get_origin(annotation) is typing.Annotated:
        base = typing.get_args(annotation)[0]
        if base is str or typing.get_origin(base) is typing.Annotated and typing.get_args(base)[0] is str:
            yield path, annotation
            return
        if isinstance(base, type) and issubclass(base, BaseModel) or typing.get_origin(base) is not None:
            yield from _string_leaves(base, path, seen)
        return
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return
    for index, arg in enumerate(typing.get_args(annotation)):
        where = {list: "[]", dict: "{key}" if index == 0 else "{}"}.get(origin, "")  # type: ignore[call-overload]
        yield from _string_leaves(arg, path + where, seen)


_OWN = (StringConstraints, AfterValidator, BeforeValidator, WithJsonSchema)


def _own(annotation: Any) -> tuple[Any, ...]:
    """The metadata a types.py type is made of; a field may narrow one further (Field(max_length=40))."""
    args = typing.get_args(annotation)
    return (args[0], *(m for m in args[1:] if isinstance(m, _OWN))) if args else (annotation,)


def _is_typed(annotation: Any) -> bool:
    return annotation is not str and _own(annotation) in {_own(t) for t in types.STRING_TYPES}


def test_no_profile_field_is_a_bare_str() -> None:
    leaves = list(_string_leaves(Profile, "", set()))
    assert len(leaves) > 40  # the walker reaches the whole model (secrets, workers, pricing, ...)
    bare = [path for path, annotation in leaves if not _is_typed(annotation)]
    assert bare == []


def test_the_walker_finds_a_bare_str() -> None:
    class Bad(BaseModel):
        name: str
        tags: dict[str, types.LabelValue]
        good: types.DNS1123Label

    paths = [p for p, a in _string_leaves(Bad, "", set()) if not _is_typed(a)]
    assert paths == ["name", "tags{key}"]


def _accepts(kind: Any, value: str) -> bool:
    try:
        TypeAdapter(kind).validate_python(value)
    except ValidationError:
        return False
    return True


CASES: list[tuple[Any, list[str], list[str]]] = [
    (types.DNS1123Label, ["a", "api", "a-1", "x" * 63],
     ["", "A", "-a", "a-", "a.b", "a_b", "x" * 64, "api\n", "api ", 'a"', "ａpi"]),
    (types.DNS1123Subdomain, ["a.b", "llm-model-cache", "a" * 63 + ".b"],
     ["a..b", ".a", "A.b", "a." , "a" * 254, "a\nb"]),
    (types.SecretName, ["redis-credentials", "a.b"], ["a" * 64 + ".b", "redis\nrequirepass x", "Redis", "a b"]),
    (types.SecretKey, ["password", "tls.crt", "HF_TOKEN", "a-b_c.d"], [".", "..", "..a", "a/b", "a\n", "a b", ""]),
    (types.LabelKey, ["release", "app.kubernetes.io/name", "nvidia.com/gpu.product", "a" * 63],
     ["a" * 64, "/a", "A.b/c", "a/b/c", "-a", "a b", "a\n"]),
    (types.LabelValue, ["", "1", "kube-prometheus-stack", "A_b.c", "x" * 63],
     ["x" * 64, "-a", "a-", "a b", 'a"', "a\n"]),
    (types.HfModelId, ["meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen3-8B", "a/b"],
     ["llama", "a/b/c", "meta-llama/Llama 3", "org/name\n--trust-remote-code", "a--b/c", "a/b..c", "-a/b", "a/b-",
      "a/" + "b" * 97]),
    (types.ModelName, ["llama3.1:8b", "library/llama3:latest", "meta-llama/Llama-3.1-8B-Instruct",
                       "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M"],
     ["llama3.1:8b --x", "x\ny", "Llama:", "a/b/c/d", "-x", "x:-y", "$(id)"]),
    (types.ImageRef, ["vllm/vllm-openai:v0.10.2", "registry.example.com:5000/ai-platform/api:1.0.0", "redis",
                      "ghcr.io/a/b@sha256:" + "0" * 64, "localhost/a__b-c:1_2.3"],
     ["vllm/X", "user:pass@registry.example.com/a:1", "a:", "a b", "a\n", "a/:1", "a:" + "x" * 129, "a@sha256:12"]),
    (types.MetricName, ["vllm:num_requests_running", "http_requests_total", "_a"], ["1a", "a-b", "a b", "a{b}"]),
    (types.Hostname, ["postgres", "10.0.0.1", "db.example.com"], ["Postgres", "db example", "a\n", "a:5432", ""]),
    (types.HostPort, ["prometheus-blackbox-exporter.monitoring.svc:9115", "10.0.0.1:80"],
     ["host", "host:0", "host:65536", "user@host:1", "host:1\n"]),
    (types.HttpUrl, ["http://kube-prometheus-stack-prometheus.monitoring.svc:9090", "https://runbooks.example.com/a/b",
                     "https://a.example.com/x?y=1"],
     ["ftp://a.example.com", "https://user:pass@a.example.com", "https://a.example.com/x y", "javascript:alert(1)",
      "https://a.example.com/\n", "https://a.example.com/'", "https://a.example.com/#frag", "https://a@b.example.com"]),
    (types.ListenAddr, ["*", "0.0.0.0", "127.0.0.1,10.0.0.1"], ["0.0.0.0 ", "a;b", "a\nb", ""]),
    (types.PgIdentifier, ["app", "pgbouncer_admin", "_x"], ["1a", "a-b", "a b", "x" * 64, "a'"]),
    (types.OneLine, ["", "db\\101", "a 'b' \"c\" #d ;e =f"], ["a\nb", "a\rb", "a\x00", "a\x85b", "a\u2028b", "a\u2029b",
                                                              "a\u200bb", "a\x1bb"]),
]


@pytest.mark.parametrize(("kind", "good", "bad"), CASES, ids=lambda v: getattr(v, "__name__", None) or "")
def test_types_accept_and_refuse(kind: Any, good: list[str], bad: list[str]) -> None:
    assert [v for v in good if not _accepts(kind, v)] == []
    assert [v for v in bad if _accepts(kind, v)] == []


def _render_names(env: str) -> set[str]:
    profile, source = load_profile(env, PROFILES)
    return {obj["metadata"]["name"] for obj in render.render(profile, source).objects}, profile


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_rendered_names_cover_every_object_perfstack_renders(env: str) -> None:
    names, profile = _render_names(env)
    own = {profile.app.deployment, f"{profile.app.deployment}-performance"}
    uncovered = {n for n in names - own if not any(n == r or n.startswith(r + "-") for r in rendered_names(profile))}
    assert uncovered == set()


def _write(tmp_path: Path, text: str) -> Path:
    for parent in PROFILES.glob("*.yaml"):
        (tmp_path / parent.name).write_text(parent.read_text())
    path = tmp_path / "clash.yaml"
    path.write_text("extends: prod\nenvironment: clash\nnamespace: clash\n" + text)
    return path


@pytest.mark.parametrize("name", ["llm", "pgbouncer", "redis", "postgres", "worker", "redis-queue", "llm-model-cache",
                                  "perfstack-alerts", "grafana", "worker-default"])
def test_app_deployment_cannot_take_a_rendered_name(tmp_path: Path, name: str) -> None:
    path = _write(tmp_path, f"app: {{deployment: {name}}}\n")
    with pytest.raises(ProfileError) as caught:
        load_profile(str(path), tmp_path)
    [problem] = caught.value.problems
    assert (problem.file, problem.line, problem.key) == (str(path), 4, "app.deployment")
    assert "collides" in problem.message


def test_app_deployment_quote_is_refused_at_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, 'app:\n  deployment: \'api", job=~".+\'\n')
    with pytest.raises(ProfileError) as caught:
        load_profile(str(path), tmp_path)
    [problem] = caught.value.problems
    assert (problem.line, problem.key) == (5, "app.deployment")


def test_vllm_needs_a_hugging_face_id(tmp_path: Path) -> None:
    path = _write(tmp_path, "llm: {server: vllm, model: {name: 'llama3.1:8b'}}\n")
    with pytest.raises(ProfileError) as caught:
        load_profile(str(path), tmp_path)
    assert any(p.key.startswith("llm.model") and "Hugging Face" in p.message for p in caught.value.problems)


@pytest.mark.parametrize("name", ["redis", "pgbouncer", "worker-default", "llm"])
def test_queue_redis_cannot_take_a_rendered_name(tmp_path: Path, name: str) -> None:
    path = _write(tmp_path, f"workers: {{redis: {{name: {name}}}}}\n")
    with pytest.raises(ProfileError) as caught:
        load_profile(str(path), tmp_path)
    [problem] = caught.value.problems
    assert (problem.line, problem.key) == (4, "workers.redis.name")
