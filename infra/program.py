"""The Pulumi program: load the profile, apply the stack's settings, render, register what was rendered.

No tuning logic lives here. The program consumes the same Bundle that `perfstack render` writes:
each object in Bundle.objects becomes one typed resource, grouped in one ComponentResource per
component (the object's app.kubernetes.io/name label). The only objects it adds are the two
Secrets, built from secret stack config, which are never rendered.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pulumi
import pulumi_kubernetes as k8s

from generators import paths
from generators.bundle import Bundle
from generators.errors import PerfstackError
from generators.k8s import metadata
from generators.objects import workloads
from generators.profile import Profile
from generators.render import render
from generators.validation import load_profile

from . import kinds
from .stack import PROJECT, StackSettings, apply, profile_path

ROOT = Path(__file__).resolve().parent.parent
COMPONENT_LABEL = "app.kubernetes.io/name"
PROMETHEUS_OPERATOR_GROUP = "monitoring.coreos.com/"


class Target(pulumi.ComponentResource):
    """One component of the stack (pgbouncer, redis, postgres, llm, ...) and the objects rendered for it."""

    def __init__(self, name: str, objects: Iterable[dict[str, Any]], opts: pulumi.ResourceOptions,
                 child_opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("perfstack:index:Target", name, None, opts)
        self.resources: dict[str, pulumi.CustomResource] = {}
        for obj in objects:
            options = pulumi.ResourceOptions.merge(child_opts or pulumi.ResourceOptions(),
                                                   pulumi.ResourceOptions(parent=self))
            self.resources[f"{obj['kind']}/{obj['metadata']['name']}"] = kinds.register(obj, options)
        self.register_outputs({"objects": sorted(self.resources)})


class Credentials(pulumi.ComponentResource):
    """The Secrets the rendered objects refer to by name; their values come from secret stack config."""

    def __init__(self, profile: Profile, postgres_password: pulumi.Output[str], redis_password: pulumi.Output[str],
                 opts: pulumi.ResourceOptions) -> None:
        super().__init__("perfstack:index:Credentials", "credentials", None, opts)
        child = pulumi.ResourceOptions(parent=self)
        refs = profile.secrets
        user = profile.pgbouncer.auth_user
        # cast: pulumi's stubs bind Output.secret's type variable to Never for an Output argument.
        postgres_data: Any = pulumi.Output.secret(cast(Any, postgres_password)).apply(lambda pw: {
            workloads.USERNAME_KEY: user,
            refs.postgres_password.key: pw,
            workloads.USERLIST_KEY: workloads.userlist(user, pw),
        })
        self.postgres = k8s.core.v1.Secret(
            f"{profile.namespace}/{refs.postgres_password.secret}",
            metadata=cast(Any, metadata(profile, refs.postgres_password.secret, "postgres")),
            type="kubernetes.io/basic-auth", string_data=postgres_data, opts=child)
        self.redis = k8s.core.v1.Secret(
            f"{profile.namespace}/{refs.redis_password.secret}",
            metadata=cast(Any, metadata(profile, refs.redis_password.secret, "redis")),
            type="Opaque",
            string_data=pulumi.Output.secret(cast(Any, redis_password)).apply(lambda pw: {refs.redis_password.key: pw}),
            opts=child)
        self.register_outputs({"secrets": [refs.postgres_password.secret, refs.redis_password.secret]})


@dataclass
class Deployment:
    """What one run of the program registered; `main` exports its outputs."""

    bundle: Bundle
    components: dict[str, Target]
    credentials: Credentials
    outputs: dict[str, Any]


def load(settings: StackSettings) -> Bundle:
    """Profile -> stack overrides -> render (cross-component checks refuse here, before any resource)."""
    name, profiles_dir = profile_path(settings.profile, ROOT)
    profile, source = load_profile(name, profiles_dir)
    return render(apply(profile, settings), source)


def _component(obj: dict[str, Any]) -> str:
    return (obj["metadata"].get("labels") or {}).get(COMPONENT_LABEL) or obj["kind"].lower()


def deploy(settings: StackSettings, postgres_password: pulumi.Input[str],
           redis_password: pulumi.Input[str]) -> Deployment:
    bundle = load(settings)  # raises before anything is registered
    profile = bundle.profile
    objects = [obj for obj in bundle.objects
               if settings.prometheus_operator or not obj["apiVersion"].startswith(PROMETHEUS_OPERATOR_GROUP)]
    if settings.render_yaml_to_directory:
        pulumi.log.warn(f"renderYamlToDirectory: writing manifests to {settings.render_yaml_to_directory} instead "
                        "of applying them; the Secrets are written there in plain text")
    provider = k8s.Provider(
        "kubernetes",
        # A ConfigMap edit updates it in place; the pods roll through the checksum annotation on their template.
        enable_config_map_mutable=True,
        enable_secret_mutable=True,
        render_yaml_to_directory=settings.render_yaml_to_directory,
    )
    base = pulumi.ResourceOptions(provider=provider)
    namespaces = [obj for obj in objects if obj["kind"] == "Namespace" and obj["apiVersion"] == "v1"]
    namespace_component = Target("namespace", namespaces, base) if namespaces else None
    after_namespace = pulumi.ResourceOptions.merge(base, pulumi.ResourceOptions(
        depends_on=[namespace_component] if namespace_component else []))
    credentials = Credentials(profile, pulumi.Output.from_input(postgres_password),
                              pulumi.Output.from_input(redis_password), after_namespace)
    groups: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        if obj in namespaces:
            continue
        groups.setdefault(_component(obj), []).append(obj)
    # Pods need their Secrets and ConfigMaps first: every component waits for the namespace and the credentials.
    after_credentials = pulumi.ResourceOptions.merge(after_namespace, pulumi.ResourceOptions(depends_on=[credentials]))
    components: dict[str, Target] = {"namespace": namespace_component} if namespace_component else {}
    for name in sorted(groups):
        components[name] = Target(name, groups[name], base, after_credentials)
    services = sorted(obj["metadata"]["name"] for obj in objects if obj["kind"] == "Service")
    outputs: dict[str, Any] = {
        "namespace": profile.namespace,
        "services": services,
        "settingsDigest": bundle.digest(),
        "environment": profile.environment,
        "postgres": profile.kubernetes.postgres,
    }
    if profile.kubernetes.postgres == "external":
        outputs["alterSystemSql"] = bundle.files[paths.ALTER_SYSTEM_SQL]
    return Deployment(bundle, components, credentials, outputs)


def main() -> None:
    config = pulumi.Config(PROJECT)
    try:
        settings = StackSettings.from_config(config)
        result = deploy(settings, config.require_secret("postgresPassword"), config.require_secret("redisPassword"))
    except PerfstackError as exc:
        # The same message `perfstack validate` prints, without a Python traceback.
        raise pulumi.RunError(f"perfstack refused the deployment:\n{exc}") from None
    for key, value in result.outputs.items():
        pulumi.export(key, value)
