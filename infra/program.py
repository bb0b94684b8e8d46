"""The Pulumi program: load the profile, apply the stack's settings, render, register what was rendered.

No tuning logic lives here. The program consumes the same Bundle that `perfstack render` writes:
each object in Bundle.objects becomes one typed resource, grouped in one ComponentResource per
component (the object's app.kubernetes.io/name label). The only objects it adds are the two
Secrets, built from secret stack config, which are never rendered.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pulumi
import pulumi_kubernetes as k8s

from generators import paths
from generators.bundle import Bundle
from generators.errors import PerfstackError
from generators.k8s import USERNAME_KEY, metadata
from generators.objects import workloads
from generators.profile import Profile
from generators.render import render
from generators.validation import load_profile

from . import cluster, kinds
from .stack import PROJECT, StackSettings, apply, profile_path

ROOT = Path(__file__).resolve().parent.parent
COMPONENT_LABEL = "app.kubernetes.io/name"
PROMETHEUS_OPERATOR_GROUP = "monitoring.coreos.com/"
SKIP_AWAIT = "pulumi.com/skipAwait"
PATCH_FORCE = "pulumi.com/patchForce"
DELETION_PROPAGATION = "pulumi.com/deletionPropagationPolicy"
# The LLM rollout may wait for a GPU node to scale up and pull its image before the startup probe's own
# budget (llm.startup_timeout) starts: Pulumi waits that budget plus this margin, not its default 10 minutes.
LLM_ROLLOUT_MARGIN_S = 15 * 60
PASSWORD_ENV = {"postgresPassword": "PERFSTACK_POSTGRES_PASSWORD", "redisPassword": "PERFSTACK_REDIS_PASSWORD"}


def project_root() -> Path:
    """The folder holding Pulumi.yaml: relative stack paths (profile, kubeconfig, renderYamlToDirectory) start here.

    `main: infra/` runs the program in infra/, and providers start there too, so a relative path given to
    them as it is would land under infra/.
    """
    try:
        root = pulumi.get_root_directory()
    except Exception:  # noqa: BLE001 - older SDKs, mocks
        root = None
    if root and (Path(root) / "Pulumi.yaml").exists():
        return Path(root)
    for folder in (Path.cwd(), *Path.cwd().parents):
        if (folder / "Pulumi.yaml").exists():
            return folder
    return ROOT


def _resolve(path: str | None, root: Path) -> str | None:
    if not path:
        return None
    return str(Path(path) if Path(path).is_absolute() else root / path)


def _under_mocks() -> bool:
    """pulumi.runtime.set_mocks: no engine and no cluster (tests/test_pulumi.py)."""
    from pulumi.runtime import mocks, settings

    return isinstance(getattr(settings.SETTINGS, "monitor", None), mocks.MockMonitor)


def llm_timeouts(profile: Profile) -> pulumi.CustomTimeouts | None:
    """customTimeouts for the LLM Deployment: the startup probe's budget plus a node scale-up and image pull."""
    if profile.llm is None:
        return None
    from generators import llm

    budget = -(-llm.startup_timeout(profile) // 1000) + LLM_ROLLOUT_MARGIN_S  # startup_timeout is in ms
    return pulumi.CustomTimeouts(create=f"{budget}s", update=f"{budget}s")


class Target(pulumi.ComponentResource):
    """One component of the stack (pgbouncer, redis, postgres, llm, ...) and the objects rendered for it."""

    def __init__(self, name: str, objects: Iterable[dict[str, Any]], opts: pulumi.ResourceOptions,
                 child_opts: pulumi.ResourceOptions | None = None,
                 per_object: Callable[[dict[str, Any]], pulumi.ResourceOptions | None] | None = None) -> None:
        super().__init__("perfstack:index:Target", name, None, opts)
        self.resources: dict[str, pulumi.CustomResource] = {}
        for obj in objects:
            options = pulumi.ResourceOptions.merge(child_opts or pulumi.ResourceOptions(),
                                                   pulumi.ResourceOptions(parent=self))
            extra = per_object(obj) if per_object else None
            if extra is not None:
                options = pulumi.ResourceOptions.merge(options, extra)
            self.resources[f"{obj['kind']}/{obj['metadata']['name']}"] = kinds.register(obj, options)
        self.register_outputs({"objects": sorted(self.resources)})


class Credentials(pulumi.ComponentResource):
    """The Secrets the rendered objects refer to by name; their values come from secret stack config."""

    def __init__(self, profile: Profile, postgres_password: pulumi.Output[str], redis_password: pulumi.Output[str],
                 opts: pulumi.ResourceOptions, annotations: dict[str, str] | None = None) -> None:
        super().__init__("perfstack:index:Credentials", "credentials", None, opts)
        child = pulumi.ResourceOptions(parent=self)
        refs = profile.secrets
        user = profile.pgbouncer.auth_user
        # cast: pulumi's stubs bind Output.secret's type variable to Never for an Output argument.
        postgres_data: Any = pulumi.Output.secret(cast(Any, postgres_password)).apply(lambda pw: {
            USERNAME_KEY: user,
            refs.postgres_password.key: pw,
            workloads.USERLIST_KEY: workloads.userlist(user, pw),
        })
        self.postgres = k8s.core.v1.Secret(
            f"{profile.namespace}/{refs.postgres_password.secret}",
            metadata=cast(Any, metadata(profile, refs.postgres_password.secret, "postgres", annotations=annotations)),
            type="kubernetes.io/basic-auth", string_data=postgres_data, opts=child)
        self.redis = k8s.core.v1.Secret(
            f"{profile.namespace}/{refs.redis_password.secret}",
            metadata=cast(Any, metadata(profile, refs.redis_password.secret, "redis", annotations=annotations)),
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


def load(settings: StackSettings, root: Path = ROOT) -> Bundle:
    """Profile -> stack overrides -> render (cross-component checks refuse here, before any resource)."""
    name, profiles_dir = profile_path(settings.profile, root)
    profile, source = load_profile(name, profiles_dir)
    return render(apply(profile, settings), source)


def check_parameter_group(settings: StackSettings, bundle: Bundle) -> dict[str, Any] | None:
    """The rendered RDS parameter group when the stack opts in (rdsParameterGroup), refused before any resource
    when the profile's database is not on RDS; None when the stack does not opt in."""
    if not settings.rds_parameter_group:
        return None
    profile = bundle.profile
    if profile.kubernetes.postgres != "external" or profile.postgres.managed != "rds":
        raise PerfstackError(
            f"stack config {PROJECT}:rdsParameterGroup: the profile's database is not on RDS (kubernetes.postgres "
            f"{profile.kubernetes.postgres}, postgres.managed {profile.postgres.managed}); a parameter group is "
            "created only for postgres.managed rds")
    data: dict[str, Any] = json.loads(bundle.files[paths.RDS_PARAMETERS])
    return data


def parameter_group(profile: Profile, data: dict[str, Any]) -> pulumi.Resource:
    """The rendered parameters as an aws.rds.ParameterGroup: family postgresN, apply methods as rendered
    (pending-reboot for the parameters a restart sets). pulumi-aws is imported only here, for stacks that opt in."""
    import pulumi_aws as aws

    return aws.rds.ParameterGroup(
        "postgres",
        name=data["DBParameterGroupName"],
        family=f"postgres{profile.postgres.version}",
        description=f"perfstack {profile.environment}: rendered from the profile (do not edit in the console)",
        parameters=[aws.rds.ParameterGroupParameterArgs(name=p["ParameterName"], value=p["ParameterValue"],
                                                        apply_method=p["ApplyMethod"]) for p in data["Parameters"]],
        tags={"app.kubernetes.io/managed-by": "perfstack", "perfstack/environment": profile.environment},
    )


def _component(obj: dict[str, Any]) -> str:
    return (obj["metadata"].get("labels") or {}).get(COMPONENT_LABEL) or obj["kind"].lower()


def deploy(settings: StackSettings, postgres_password: pulumi.Input[str],
           redis_password: pulumi.Input[str], root: Path | None = None, check_cluster: bool = False) -> Deployment:
    root = root or ROOT
    bundle = load(settings, root)  # raises before anything is registered
    profile = bundle.profile
    rds_parameters = check_parameter_group(settings, bundle)  # refused here too, before any resource
    objects = [obj for obj in bundle.objects
               if settings.prometheus_operator or not obj["apiVersion"].startswith(PROMETHEUS_OPERATOR_GROUP)]
    render_dir = _resolve(settings.render_yaml_to_directory, root)
    kubeconfig = settings.kubeconfig
    if kubeconfig and "\n" not in kubeconfig:
        kubeconfig = _resolve(kubeconfig, root)
    facts = None
    if check_cluster and not render_dir:
        # Before any resource: the right cluster, the namespace, every operator's CRDs.
        facts = cluster.check(cluster.api_client(kubeconfig, settings.context), cluster_id=settings.cluster_id,
                              namespace=profile.namespace, manage_namespace=profile.kubernetes.manage_namespace,
                              objects=objects)
    if render_dir:
        pulumi.log.warn(f"renderYamlToDirectory: writing manifests to {render_dir} instead "
                        "of applying them; the Secrets are written there in plain text")
    # The profile is the source of truth: a field someone edited behind the stack's back (kubectl edit, an HPA's
    # maxReplicas) is taken back on the next `pulumi up`, not refused as a server-side apply conflict. The
    # annotation works with every provider release (enablePatchForce, below, only with newer ones).
    # skipAwait (a cluster without nodes or controllers) also deletes in the background: a foreground delete
    # waits for the garbage collector, which only kube-controller-manager runs.
    no_controllers = {SKIP_AWAIT: "true", DELETION_PROPAGATION: "background"} if settings.skip_await else {}
    pulumi_annotations = {PATCH_FORCE: "true", **no_controllers}
    objects = [_annotated(obj, pulumi_annotations) for obj in objects]
    provider_args: dict[str, Any] = {
        # A ConfigMap edit updates it in place; the pods roll through the checksum annotation on their template.
        "enable_config_map_mutable": True,
        "enable_secret_mutable": True,
        "enable_patch_force": True,
        "render_yaml_to_directory": render_dir,
        "kubeconfig": kubeconfig,
        "context": settings.context,
        # Pins the provider to the cluster's identity: a kubeconfig edit that keeps the cluster replaces nothing.
        "cluster_identifier": settings.cluster_id,
    }
    if render_dir:  # the provider refuses cluster settings beside renderYamlToDirectory: no cluster is used
        for key in ("kubeconfig", "context", "cluster_identifier"):
            provider_args[key] = None
    provider = k8s.Provider("kubernetes", **{k: v for k, v in provider_args.items() if v is not None})
    base = pulumi.ResourceOptions(provider=provider)
    namespaces = [obj for obj in objects if obj["kind"] == "Namespace" and obj["apiVersion"] == "v1"]
    namespace_component = None
    if namespaces:
        # A namespace that exists (the API runs there) is adopted, not refused with AlreadyExists; it is never
        # deleted: `pulumi destroy` or a namespace change leaves it, with whatever else runs in it.
        adopting = k8s.Provider("kubernetes-namespace", upsert_existing_objects=True,
                                **{k: v for k, v in provider_args.items() if v is not None})
        namespace_component = Target("namespace", namespaces, pulumi.ResourceOptions(provider=adopting),
                                     pulumi.ResourceOptions(provider=adopting, retain_on_delete=True))
    after_namespace = pulumi.ResourceOptions.merge(base, pulumi.ResourceOptions(
        depends_on=[namespace_component] if namespace_component else []))
    credentials = Credentials(profile, pulumi.Output.from_input(postgres_password),
                              pulumi.Output.from_input(redis_password), after_namespace, pulumi_annotations)
    groups: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        if obj in namespaces:
            continue
        groups.setdefault(_component(obj), []).append(obj)
    # Pods need their Secrets and ConfigMaps first: every component waits for the namespace and the credentials.
    after_credentials = pulumi.ResourceOptions.merge(after_namespace, pulumi.ResourceOptions(depends_on=[credentials]))
    components: dict[str, Target] = {"namespace": namespace_component} if namespace_component else {}
    timeouts = llm_timeouts(profile)

    def per_object(obj: dict[str, Any]) -> pulumi.ResourceOptions | None:
        if timeouts and obj["kind"] == "Deployment" and _component(obj) == "llm":
            return pulumi.ResourceOptions(custom_timeouts=timeouts)
        return None

    for name in sorted(groups):
        components[name] = Target(name, groups[name], base, after_credentials, per_object)
    services = sorted(obj["metadata"]["name"] for obj in objects if obj["kind"] == "Service")
    outputs: dict[str, Any] = {
        "namespace": profile.namespace,
        "services": services,
        "settingsDigest": bundle.digest(),
        "environment": profile.environment,
        "postgres": profile.kubernetes.postgres,
    }
    external = profile.kubernetes.postgres == "external"
    if external and paths.ALTER_SYSTEM_SQL in bundle.files:  # a self-managed external server: the DBA runs it
        outputs["alterSystemSql"] = bundle.files[paths.ALTER_SYSTEM_SQL]
    for service_file in (paths.RDS_PARAMETERS, paths.CLOUDSQL_FLAGS, paths.AZURE_PARAMETERS):
        if external and service_file in bundle.files:  # a managed service: what its API takes instead of ALTER SYSTEM
            outputs["managedPostgresParameters"] = bundle.files[service_file]
    if facts is not None:
        outputs["clusterId"] = facts.identity
    if rds_parameters is not None:
        group = parameter_group(profile, rds_parameters)
        outputs["rdsParameterGroup"] = group.name  # type: ignore[attr-defined]
    return Deployment(bundle, components, credentials, outputs)


def _annotated(obj: dict[str, Any], annotations: dict[str, str]) -> dict[str, Any]:
    """A copy of a rendered object with Pulumi's own annotations added (the Bundle's objects stay as rendered)."""
    obj = copy.deepcopy(obj)
    obj["metadata"]["annotations"] = {**obj["metadata"].get("annotations", {}), **annotations}
    return obj


def password(config: pulumi.Config, key: str) -> pulumi.Output[str]:
    """Secret stack config `key`, else the environment variable PASSWORD_ENV[key] (secret in the state too)."""
    from pulumi.runtime.config import get_config, is_config_secret

    # Pulumi.yaml declares these with default "" (a secret key cannot have a default, and a key without one
    # would be required in every stack), so the program checks that a value that is set is a secret.
    full_key = f"{PROJECT}:{key}"
    if get_config(full_key):
        if not is_config_secret(full_key):
            raise PerfstackError(f"stack config {full_key}: set in plain text; use `pulumi config set --secret {key}` "
                                 f"(or export {PASSWORD_ENV[key]})")
        return config.require_secret(key)
    env = os.environ.get(PASSWORD_ENV[key])
    if env:
        return pulumi.Output.secret(env)
    raise PerfstackError(f"stack config perfstack:{key}: not set; `pulumi config set --secret {key}` or export "
                         f"{PASSWORD_ENV[key]}")


def main(root: Path | None = None) -> None:
    """The program; `root` is the project folder (default: where Pulumi.yaml is, see project_root)."""
    config = pulumi.Config(PROJECT)
    try:
        settings = StackSettings.from_config(config, pulumi.get_stack())
        result = deploy(settings, password(config, "postgresPassword"), password(config, "redisPassword"),
                        root=root or project_root(), check_cluster=not _under_mocks())
    except PerfstackError as exc:
        # The same message `perfstack validate` prints, without a Python traceback.
        raise pulumi.RunError(f"perfstack refused the deployment:\n{exc}") from None
    for key, value in result.outputs.items():
        pulumi.export(key, value)
