"""Small helpers for the Kubernetes objects targets return (metadata, ConfigMaps, checksums, YAML)."""

from __future__ import annotations

import re
from typing import Any

import yaml

from .bundle import checksum
from .profile import Profile

CHECKSUM_ANNOTATION = "perfstack.io/config-checksum"
# The LLM server's Deployment and Service: llm.py creates them, autoscaling.py scales the Deployment.
LLM_SERVER = "llm"
# The key of the PostgreSQL Secret (kubernetes.io/basic-auth) holding the role: CloudNativePG's bootstrap, the
# exporters and the Pulumi program read it.
USERNAME_KEY = "username"


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


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """PyYAML's safe dumper on libyaml. It resolves YAML 1.1 like kubectl (go-yaml) and Prometheus do, so
    strings such as `off`, `yes` or `0777` are quoted rather than read back as booleans and numbers."""

    def ignore_aliases(self, data: Any) -> bool:
        return True  # a value shared by two keys (requests and limits) is written out twice, never as &id001


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if any(char in data for char in "\r\x85\u2028\u2029"):
        # a literal block would read these back as a newline (YAML 1.1 line breaks): quote and escape them
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style='"')
    if "\n" in data:  # config files in ConfigMaps read best, and diff best, as literal blocks
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_str(data)


_Dumper.add_representer(str, _represent_str)


def dump_yaml(data: Any, sort_keys: bool = True) -> str:
    """YAML for files people review: block style, long lines kept whole, keys sorted unless told otherwise."""
    return str(yaml.dump(data, Dumper=_Dumper, sort_keys=sort_keys, default_flow_style=False, width=4096,
                         allow_unicode=True))
