"""Small helpers for the Kubernetes objects targets return (metadata, ConfigMaps, checksums, YAML)."""

from __future__ import annotations

import io
import re
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.resolver import VersionedResolver

from .bundle import checksum
from .profile import Profile

CHECKSUM_ANNOTATION = "perfstack.io/config-checksum"
# The LLM server's Deployment and Service: llm.py creates them, autoscaling.py scales the Deployment.
LLM_SERVER = "llm"


def labels(profile: Profile, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": component,
        "app.kubernetes.io/part-of": "perfstack",
        "app.kubernetes.io/managed-by": "perfstack",
        "perfstack.io/environment": profile.environment,
    }


def metadata(profile: Profile, name: str, component: str, extra_labels: dict[str, str] | None = None,
             annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": profile.namespace,
                            "labels": {**labels(profile, component), **(extra_labels or {})}}
    if annotations:
        meta["annotations"] = annotations
    return meta


def config_map(profile: Profile, name: str, component: str, data: dict[str, str],
               extra_labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": metadata(profile, name, component, extra_labels), "data": dict(sorted(data.items()))}


def checksum_of(data: dict[str, str]) -> str:
    """The checksum a pod template carries of the config it mounts: a change rolls the pods."""
    return checksum("\0".join(f"{k}={data[k]}" for k in sorted(data)))


def object_filename(obj: dict[str, Any]) -> str:
    kind = obj["kind"].lower()
    name = re.sub(r"[^a-z0-9.-]", "-", obj["metadata"]["name"].lower())
    return f"{kind}-{name}.yaml"


# ruamel writes YAML 1.2, where `off`, `yes`, `0777` or `1:30` are plain strings; kubectl (go-yaml)
# and PyYAML read YAML 1.1 and would take them for booleans and numbers. Such strings are quoted.
_YAML11 = VersionedResolver(version=(1, 1))


def _represent_str(representer: Any, data: str) -> Any:
    if "\n" in data:  # config files in ConfigMaps read best, and diff best, as literal blocks
        return representer.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    plain_is_str = _YAML11.resolve(ScalarNode, data, (True, False)) == "tag:yaml.org,2002:str"
    return representer.represent_scalar("tag:yaml.org,2002:str", data, style=None if plain_is_str else "'")


def to_yaml(obj: dict[str, Any]) -> str:
    yaml = YAML(typ="safe")  # libyaml's emitter (ruamel.yaml.clib): ~5x faster than the pure one
    yaml.default_flow_style = False
    yaml.width = 4096
    yaml.representer.add_representer(str, _represent_str)  # after the style: the representer copies it
    stream = io.StringIO()
    yaml.dump(_sorted(obj), stream)
    return stream.getvalue()


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value
