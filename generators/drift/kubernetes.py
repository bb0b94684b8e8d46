"""Kubernetes drift: each object the profile renders (Bundle.objects: HPAs, ConfigMaps, Deployments,
PrometheusRules, ...) against the live object, read with the kubernetes Python client.

Only the fields perfstack sets are compared: the rendered object is walked, and each value it sets is
looked up in the live object. Whatever the API server or other controllers add (status, managedFields,
resourceVersion, uid, defaults such as a Deployment's strategy or a container's terminationMessagePath,
labels and annotations of others) is not perfstack's and is not compared. Two places are owned whole:
a ConfigMap's `data`/`binaryData` (an extra key there is drift) and every list without names (HPA
metrics, behavior policies, container args: a list perfstack sets is compared item by item, length
included). Lists of named items (containers, env, ports, volumes, rule groups, rules) are matched by
name, and only the named items perfstack renders are compared. Resource quantities compare by value
(`1000m` equals `1`, `1Gi` equals `1073741824`). Secrets are never read.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal, InvalidOperation
from typing import Any

from .report import CHANGED, EXTRA, MISSING, Difference, TargetReport, failed

TARGET = "kubernetes"
TIMEOUT_S = 5
# Plural resource names of the kinds perfstack renders (anything else: lower-case kind + "s").
PLURALS = {
    "HorizontalPodAutoscaler": "horizontalpodautoscalers", "ConfigMap": "configmaps", "Deployment": "deployments",
    "PrometheusRule": "prometheusrules", "Service": "services", "StatefulSet": "statefulsets",
    "PodDisruptionBudget": "poddisruptionbudgets", "ServiceMonitor": "servicemonitors", "PodMonitor": "podmonitors",
    "ScaledObject": "scaledobjects", "GrafanaDashboard": "grafanadashboards", "NetworkPolicy": "networkpolicies",
    "Ingress": "ingresses", "PriorityClass": "priorityclasses", "Namespace": "namespaces",
}
CLUSTER_SCOPED = frozenset({"Namespace", "PriorityClass", "ClusterRole", "ClusterRoleBinding", "StorageClass",
                            "CustomResourceDefinition", "PersistentVolume"})
NEVER_READ = frozenset({"Secret"})
OWNED_MAPS = {("ConfigMap", "data"), ("ConfigMap", "binaryData")}
NAME_KEYS = ("name", "alert", "record")
QUANTITY_PARENTS = frozenset({"limits", "requests", "target", "capacity"})
QUANTITY_SUFFIXES = {
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}


def api_path(obj: dict[str, Any]) -> str:
    """The REST path of an object: /api/v1/... for the core group, /apis/GROUP/VERSION/... otherwise."""
    api_version, kind = obj["apiVersion"], obj["kind"]
    meta = obj.get("metadata", {})
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    plural = PLURALS.get(kind) or kind.lower() + ("es" if kind.lower().endswith("s") else "s")
    if kind in CLUSTER_SCOPED:
        return f"{base}/{plural}/{meta['name']}"
    return f"{base}/namespaces/{meta.get('namespace', 'default')}/{plural}/{meta['name']}"


def object_id(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {})
    if obj["kind"] in CLUSTER_SCOPED:
        return f"{obj['kind']}/{meta['name']}"
    return f"{obj['kind']}/{meta.get('namespace', 'default')}/{meta['name']}"


def parse_quantity(value: Any) -> Decimal | None:
    """A Kubernetes quantity ('500m', '1Gi', '2', 0.5) as a number; None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    if not isinstance(value, str):
        return None
    text = value.strip()
    for suffix in sorted(QUANTITY_SUFFIXES, key=len, reverse=True):
        if suffix and text.endswith(suffix):
            number = text[: -len(suffix)]
            break
    else:
        suffix, number = "", text
    try:
        return Decimal(number) * QUANTITY_SUFFIXES[suffix]
    except InvalidOperation:
        return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _same_scalar(want: Any, have: Any, path: str) -> bool:
    if want == have and type(want) is type(have):
        return True
    if isinstance(want, (int, float)) and isinstance(have, (int, float)) and not isinstance(want, bool) \
            and not isinstance(have, bool):
        return float(want) == float(have)
    segments = path.split(".")
    if (len(segments) > 1 and segments[-2] in QUANTITY_PARENTS) or segments[-1] in ("averageValue", "value"):
        a, b = parse_quantity(want), parse_quantity(have)
        return a is not None and a == b
    return False


def _list_key(items: list[Any]) -> str | None:
    """The key that names every item of a list of mappings (name, alert or record), if one does."""
    if not items or not all(isinstance(item, dict) for item in items):
        return None
    for key in NAME_KEYS:
        if all(key in item for item in items):
            return key
    return None


def diff_fields(want: Any, have: Any, path: str, kind: str) -> list[tuple[str, str, Any, Any]]:
    """(path, kind of difference, expected, actual) for every field `want` sets that `have` lacks or differs in."""
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return [(path, CHANGED, want, have)]
        out: list[tuple[str, str, Any, Any]] = []
        for key, value in want.items():
            child = f"{path}.{key}" if path else key
            if key not in have or have[key] is None and value is not None:
                out.append((child, MISSING, value, None))
            else:
                out.extend(diff_fields(value, have[key], child, kind))
        if (kind, path) in OWNED_MAPS:
            out.extend((f"{path}.{key}", EXTRA, None, have[key]) for key in sorted(set(have) - set(want)))
        return out
    if isinstance(want, list):
        if not isinstance(have, list):
            return [(path, CHANGED, want, have)]
        name = _list_key(want)
        if name and _list_key(have) == name:
            by_name = {item[name]: item for item in have}
            out = []
            for item in want:
                child = f"{path}[{name}={item[name]}]"
                if item[name] not in by_name:
                    out.append((child, MISSING, item, None))
                else:
                    out.extend(diff_fields(item, by_name[item[name]], child, kind))
            return out
        if len(want) != len(have):
            return [(path, CHANGED, want, have)]
        out = []
        for index, (a, b) in enumerate(zip(want, have, strict=True)):
            out.extend(diff_fields(a, b, f"{path}[{index}]", kind))
        return out
    return [] if _same_scalar(want, have, path) else [(path, CHANGED, want, have)]


def compare_object(want: dict[str, Any], have: dict[str, Any] | None) -> list[Difference]:
    ident = object_id(want)
    if have is None:
        return [Difference(ident, MISSING, "rendered object", None)]
    body = {k: v for k, v in want.items() if k not in ("apiVersion", "kind", "status")}
    meta = body.get("metadata", {})
    body["metadata"] = {k: meta[k] for k in ("name", "namespace", "labels", "annotations") if k in meta}
    return [Difference(f"{ident}:{path}", kind, _text(expected), _text(actual))
            for path, kind, expected, actual in diff_fields(body, have, "", want["kind"])]


def api_client(context: str | None = None) -> Any:
    """A kubernetes ApiClient from the kubeconfig (its current context, or `context`), else in-cluster."""
    try:
        from kubernetes import client, config
    except ImportError as exc:
        raise RuntimeError("the kubernetes Python client is not installed: pip install 'perfstack[deploy]'") from exc
    try:
        # $KUBECONFIG as it is now: the client reads it once, when first imported.
        return config.new_client_from_config(config_file=os.environ.get("KUBECONFIG") or None, context=context)
    except config.ConfigException as exc:
        if context:
            raise
        try:
            config.load_incluster_config()
        except config.ConfigException:
            raise RuntimeError(f"no usable kubeconfig ({exc}) and not running inside a cluster") from None
        return client.ApiClient()


def read_object(api: Any, obj: dict[str, Any]) -> dict[str, Any] | None:
    """GET one object as the API server returns it (raw JSON); None when it does not exist (404)."""
    from kubernetes.client.exceptions import ApiException

    headers = {"Accept": "application/json"}
    if hasattr(api, "param_serialize"):  # kubernetes >= 35: the newer OpenAPI generator's client
        method, url, header_params, body, post_params = api.param_serialize(
            method="GET", resource_path=api_path(obj), header_params=headers, auth_settings=["BearerToken"])
        response = api.call_api(method, url, header_params=header_params, body=body, post_params=post_params,
                                _request_timeout=TIMEOUT_S)
        data = response.read()
        if response.status == 404:
            return None
        if response.status >= 400:
            raise ApiException(status=response.status, reason=response.reason)
        return dict(json.loads(data))
    try:  # older clients: call_api(path, method, ...) raises on errors
        response = api.call_api(api_path(obj), "GET", header_params=headers, auth_settings=["BearerToken"],
                                _preload_content=False, _return_http_data_only=True, _request_timeout=TIMEOUT_S)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return dict(json.loads(response.data))


def endpoint_of(api: Any) -> str:
    return str(getattr(api.configuration, "host", "kubernetes"))


def check(objects: list[dict[str, Any]], api: Any) -> TargetReport:
    endpoint = endpoint_of(api)
    wanted = [o for o in objects if o.get("kind") not in NEVER_READ]
    if not wanted:
        return TargetReport(TARGET, endpoint, skipped=True,
                            notes=["the profile renders no Kubernetes objects yet: nothing to compare"])
    diffs: list[Difference] = []
    errors: list[str] = []
    for obj in wanted:
        try:
            diffs.extend(compare_object(obj, read_object(api, obj)))
        except Exception as exc:  # noqa: BLE001 - one unreadable object makes the target unreadable
            reason = getattr(exc, "reason", None) or str(exc).strip().splitlines()[0]
            status = getattr(exc, "status", None)
            errors.append(f"{object_id(obj)}: {type(exc).__name__}" + (f" {status}" if status else "") + f": {reason}")
    report = TargetReport(TARGET, endpoint, checked=len(wanted), differences=diffs)
    if errors:
        report.error = "; ".join(errors)
    skipped = len(objects) - len(wanted)
    if skipped:
        report.notes.append(f"{skipped} Secret(s) not read: drift never reads secrets")
    return report


def check_context(objects: list[dict[str, Any]], context: str | None) -> TargetReport:
    try:
        api = api_client(context)
    except Exception as exc:  # noqa: BLE001 - no kubeconfig, unknown context, kubernetes not installed
        return failed(TARGET, f"context {context}" if context else "kubeconfig",
                      f"{type(exc).__name__}: {str(exc).strip()}")
    try:
        return check(objects, api)
    finally:
        api.close()
