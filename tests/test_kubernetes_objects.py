"""Every Kubernetes object perfstack renders is valid against the Kubernetes schemas.

Generic over what lands in `kubernetes/`: the committed files in rendered/*/kubernetes/ and the objects
of fresh renders (dev, prod, and prod variants that switch on KEDA and CloudNativePG).

- Built-in kinds (v1, apps/v1, autoscaling/v2, ...) are checked with kubernetes-validate against the
  published OpenAPI schemas of the newest Kubernetes it carries, in strict mode (unknown fields fail).
- kubernetes-validate has no schema for custom resources (it raises SchemaNotFoundError for any CRD
  group), so CRDs are checked against the small structural schemas in tests/k8s_schemas/
  (`<kind>-<group>-<version>.json`), which reuse the real Kubernetes definitions (ObjectMeta, the HPA
  behavior, ResourceRequirements) by reference. A CRD kind without a schema there fails: add one.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version
from referencing import Registry, Resource

from generators.bundle import Bundle
from generators.k8s import CHECKSUM_ANNOTATION, checksum_of, object_filename
from generators.render import render

from .conftest import REPO, rendered_bundle, variant

SCHEMAS = Path(__file__).parent / "k8s_schemas"
K8S_VERSION = latest_version()
DEFINITIONS = (Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
               / f"v{K8S_VERSION}-local-strict" / "_definitions.json")
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "PriorityClass", "StorageClass", "PersistentVolume"}
POD_OWNERS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}


def _builtin(api_version: str) -> bool:
    group = api_version.rpartition("/")[0]
    return not group or "." not in group or group.endswith(".k8s.io")


@cache
def _registry() -> Registry:
    return Resource.from_contents(json.loads(DEFINITIONS.read_text())) @ Registry()


def crd_schema_path(obj: dict[str, Any]) -> Path:
    group, _, version = obj["apiVersion"].rpartition("/")
    return SCHEMAS / f"{obj['kind'].lower()}-{group}-{version}.json"


def validate(obj: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError (or fail) when obj does not match its kind's schema."""
    if _builtin(obj["apiVersion"]):
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        return
    path = crd_schema_path(obj)
    if not path.exists():
        pytest.fail(f"{obj['apiVersion']} {obj['kind']}: no structural schema; add {path.relative_to(REPO)}")
    schema = json.loads(path.read_text())
    jsonschema.Draft202012Validator(schema, registry=_registry()).validate(obj)


VARIANTS = {
    "prod-keda": ("prod", {"autoscaling": {"llm": {"scaler": "keda"}}}),
    "prod-cloudnativepg": ("prod", {"kubernetes": {"postgres": "cloudnativepg"}}),
    # vLLM downloads by Hugging Face id (an Ollama tag such as llama3.1:8b is refused for it)
    "dev-vllm": ("dev", {"llm": {"server": "vllm", "model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "dtype": "bf16"}}}),
    "prod-2gpu": ("prod", {"hardware": {"gpu": {"count": 2}}}),
}


def _fresh(name: str) -> Bundle:
    if name in ("dev", "prod"):
        return rendered_bundle(name)
    return render(variant(*VARIANTS[name]))


COMMITTED = sorted((REPO / "rendered").glob("*/kubernetes/*.yaml"))


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(REPO / "rendered")))
def test_committed_file_is_valid(path: Path) -> None:
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert len(documents) == 1, f"{path.name}: one object per file"
    obj = documents[0]
    assert path.name == object_filename(obj), "files are named <kind>-<name>.yaml"
    validate(obj)


@pytest.mark.parametrize("name", ["dev", "prod", *VARIANTS])
def test_fresh_render_is_valid(name: str) -> None:
    bundle = _fresh(name)
    files = {path for path in bundle.files if path.startswith("kubernetes/")}
    assert files == {f"kubernetes/{object_filename(o)}" for o in bundle.objects}, "every object has its own file"
    assert len(files) == len(bundle.objects), "no two objects share a file name"
    for obj in bundle.objects:
        if obj["kind"] not in CLUSTER_SCOPED:
            assert obj["metadata"].get("namespace") == bundle.profile.namespace, object_filename(obj)
        # What is written is what Pulumi gets: the YAML file reads back as the object.
        assert yaml.safe_load(bundle.files[f"kubernetes/{object_filename(obj)}"]) == obj
        validate(obj)


def test_fresh_renders_cover_the_crds_this_project_renders() -> None:
    kinds = {(o["apiVersion"], o["kind"]) for name in ["dev", "prod", *VARIANTS] for o in _fresh(name).objects}
    assert ("keda.sh/v1alpha1", "ScaledObject") in kinds
    assert ("autoscaling/v2", "HorizontalPodAutoscaler") in kinds
    assert ("apps/v1", "Deployment") in kinds


def _mounted_config_maps(template: dict[str, Any]) -> set[str]:
    spec = template["spec"]
    names: set[str] = set()
    for volume in spec.get("volumes", []):
        if "configMap" in volume:
            names.add(volume["configMap"]["name"])
        for source in volume.get("projected", {}).get("sources", []):
            if "configMap" in source:
                names.add(source["configMap"]["name"])
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        for env_from in container.get("envFrom", []):
            if "configMapRef" in env_from:
                names.add(env_from["configMapRef"]["name"])
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("configMapKeyRef")
            if ref:
                names.add(ref["name"])
    return names


@pytest.mark.parametrize("name", ["dev", "prod", *VARIANTS])
def test_pod_templates_carry_the_checksum_of_the_config_they_mount(name: str) -> None:
    bundle = _fresh(name)
    config_maps = {o["metadata"]["name"]: o.get("data", {}) for o in bundle.objects if o["kind"] == "ConfigMap"}
    for obj in bundle.objects:
        if obj["kind"] not in POD_OWNERS:
            continue
        template = obj["spec"]["template"]
        mounted = _mounted_config_maps(template)
        if not mounted:
            continue
        annotation = template["metadata"].get("annotations", {}).get(CHECKSUM_ANNOTATION)
        assert annotation and re.fullmatch(r"[0-9a-f]{64}", annotation), f"{object_filename(obj)} has no checksum"
        rendered_here = [n for n in mounted if n in config_maps]
        if len(mounted) == 1 and rendered_here:
            assert annotation == checksum_of(config_maps[rendered_here[0]]), object_filename(obj)


def test_strict_validation_rejects_a_misspelled_field() -> None:
    """The checks above could fail: strict mode refuses an unknown field in a built-in kind and a CRD."""
    hpa = next(o for o in rendered_bundle("prod").objects if o["kind"] == "HorizontalPodAutoscaler")
    broken = json.loads(json.dumps(hpa))
    broken["spec"]["behaviour"] = broken["spec"].pop("behavior")
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)
    scaled = next(o for o in _fresh("prod-keda").objects if o["kind"] == "ScaledObject")
    broken = json.loads(json.dumps(scaled))
    broken["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]["stabilisationWindow"] = 1
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)
    broken = json.loads(json.dumps(scaled))
    del broken["spec"]["triggers"]
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)
