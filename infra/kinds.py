"""One rendered Kubernetes object -> one typed pulumi_kubernetes resource.

Built-in kinds map to their generated classes (apps/v1 Deployment -> pulumi_kubernetes.apps.v1.Deployment);
any other apiVersion/kind (PrometheusRule, ScaledObject, CloudNativePG Cluster, GrafanaDashboard) is an
apiextensions.CustomResource. Objects are passed through as they were rendered (camelCase keys), so what
Pulumi sends to the cluster is byte for byte what `rendered/ENV/kubernetes/` shows.
"""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

# Objects whose deletion loses data: `pulumi destroy` and replacements must be deliberate.
STATEFUL_KINDS = frozenset({("apps/v1", "StatefulSet"), ("v1", "PersistentVolumeClaim"),
                            ("postgresql.cnpg.io/v1", "Cluster")})


def _module_for(api_version: str) -> str:
    group, _, version = api_version.rpartition("/")
    if not group:
        return f"pulumi_kubernetes.core.{version}"
    short = group.removesuffix(".k8s.io").split(".")[0]
    return f"pulumi_kubernetes.{short}.{version}"


def resource_class(api_version: str, kind: str) -> type[pulumi.CustomResource] | None:
    """The generated class for a built-in kind, or None for a custom resource."""
    if "." in api_version.rpartition("/")[0] and not api_version.rpartition("/")[0].endswith(".k8s.io"):
        return None  # a CRD's group (monitoring.coreos.com, keda.sh, postgresql.cnpg.io, ...)
    try:
        module = importlib.import_module(_module_for(api_version))
    except ImportError:
        return None
    cls = getattr(module, kind, None)
    return cls if isinstance(cls, type) and issubclass(cls, pulumi.CustomResource) else None


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def resource_name(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]


def register(obj: dict[str, Any], opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    """Register `obj` as one resource; the Kubernetes name is metadata.name (no auto-naming)."""
    api_version, kind = obj["apiVersion"], obj["kind"]
    fields = {key: value for key, value in obj.items() if key not in ("apiVersion", "kind")}
    if (api_version, kind) in STATEFUL_KINDS:
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(protect=True))
    cls = resource_class(api_version, kind)
    name = resource_name(obj)
    if cls is None:
        extra = set(fields) - {"metadata", "spec"}
        if extra:
            raise ValueError(f"{kind} {name}: custom resources carry metadata and spec only, not {sorted(extra)}")
        return k8s.apiextensions.CustomResource(name, api_version=api_version, kind=kind,
                                                metadata=fields["metadata"], spec=fields.get("spec"), opts=opts)
    generated: Any = cls  # generated classes have _internal_init; the base class's stub does not
    accepted = set(inspect.signature(generated._internal_init).parameters)  # __init__ is overloaded
    kwargs = {_snake(key): value for key, value in fields.items()}
    unknown = set(kwargs) - accepted
    if unknown:
        raise ValueError(f"{kind} {name}: fields {sorted(unknown)} have no input on {cls.__module__}.{cls.__name__}")
    return cls(name, opts=opts, **kwargs)


def type_token(api_version: str, kind: str) -> str:
    """The Pulumi type token a rendered object registers as (what tests and `pulumi stack` show)."""
    group_version = api_version if "/" in api_version else f"core/{api_version}"
    return f"kubernetes:{group_version}:{kind}"
