"""The Pulumi program under pulumi.runtime.set_mocks: it registers exactly what `perfstack render` writes.

No Pulumi CLI or cluster is needed: the mocks record every resource the program registers, with the
inputs pulumi-kubernetes would send to the API server. A stack sets nothing but what a test overrides
(no stack file is committed: stacks/README.md); tests/test_pulumi_real.py runs the real engine.
"""

from __future__ import annotations

import asyncio
import json
import re
import runpy
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pytest
from ruamel.yaml import YAML

from generators.errors import ProfileError
from generators.render import render
from generators.validation import load_profile
from infra import kinds
from infra.program import deploy
from infra.stack import StackSettings, apply

ROOT = Path(__file__).resolve().parent.parent
MAIN = ROOT / "infra" / "__main__.py"
SECRET_SIG = "4dabf18193072939515e22adb298388d"  # pulumi's marker of a secret value in serialized inputs
PASSWORDS = {"perfstack:postgresPassword": 'pg-"S3cret\'-4f1a', "perfstack:redisPassword": "redis-S3cret-9c2e"}
COMPONENT_TYPES = {"perfstack:index:Target", "perfstack:index:Credentials"}
yaml = YAML(typ="safe", pure=True)


# ---------------------------------------------------------------- harness
@dataclass
class Registered:
    typ: str
    name: str
    inputs: dict[str, Any]
    custom: bool


@dataclass
class Recorder(pulumi.runtime.Mocks):
    resources: list[Registered] = field(default_factory=list)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources.append(Registered(args.typ, args.name, dict(args.inputs), bool(args.custom)))
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        return {}

    def kubernetes(self) -> list[Registered]:
        """Registered Kubernetes objects other than the Secrets (which are never rendered)."""
        return [r for r in self.resources if r.custom and r.typ.startswith("kubernetes:")
                and r.typ != "kubernetes:core/v1:Secret"]

    def secrets(self) -> list[Registered]:
        return [r for r in self.resources if r.typ == "kubernetes:core/v1:Secret"]

    def by_identity(self) -> dict[tuple[str, str, str | None], Registered]:
        found: dict[tuple[str, str, str | None], Registered] = {}
        for r in self.kubernetes():
            meta = r.inputs["metadata"]
            key = (r.typ, meta["name"], meta.get("namespace"))
            assert key not in found, f"{key} registered twice"
            found[key] = r
        return found


def stack_config(env: str) -> dict[str, str]:
    """stacks/Pulumi.ENV.yaml as the CLI passes it to the program (string values), plus the secrets."""
    data: dict[str, Any] = {"perfstack:profile": env}  # no stack file is committed: the stack's name decides  # what the program defaults to: the stack's name
    config = {key: json.dumps(value) if isinstance(value, bool) else str(value) for key, value in data.items()}
    return {**config, **PASSWORDS}


def run_program(env: str, recorder: Recorder | None = None, **overrides: str) -> Recorder:
    """Run infra/__main__.py for stack ENV under mocks; overrides replace `perfstack:` keys."""
    asyncio.set_event_loop(asyncio.new_event_loop())
    recorder = recorder if recorder is not None else Recorder()
    pulumi.runtime.set_mocks(recorder, project="perfstack", stack=env, preview=False)
    config = stack_config(env)
    config.update({f"perfstack:{key}": value for key, value in overrides.items()})
    pulumi.runtime.set_all_config(config, secret_keys=list(PASSWORDS))

    @pulumi.runtime.test
    def program() -> None:
        runpy.run_path(str(MAIN), run_name="__main__")

    program()
    return recorder


def numbers_as_floats(value: Any) -> Any:
    """Under mocks every number arrives as a float (replicas 2.0): compare numerically."""
    if isinstance(value, dict):
        return {k: numbers_as_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [numbers_as_floats(v) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def rendered_objects(out_dir: Path) -> dict[str, dict[str, Any]]:
    folder = out_dir / "kubernetes"
    return {path.name: yaml.load(path.read_text()) for path in sorted(folder.glob("*.yaml"))}


def leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(leaves(item, f"{prefix}.{key}" if prefix else key))
        return out
    if isinstance(value, list):
        out = {}
        for index, item in enumerate(value):
            out.update(leaves(item, f"{prefix}[{index}]"))
        return out
    return {prefix: value}


def copy_profiles(tmp_path: Path) -> Path:
    folder = tmp_path / "profiles"
    shutil.copytree(ROOT / "profiles", folder)
    return folder


def overlay(folder: Path, name: str, parent: str, text: str) -> str:
    path = folder / f"{name}.yaml"
    namespace = {"dev": "ai-platform-dev", "prod": "ai-platform"}[parent]
    path.write_text(f"extends: {parent}\nenvironment: {parent}\nnamespace: {namespace}\n"
                    f"environment_matches_file_name: false\n{text}")
    return str(path)


# ---------------------------------------------------------------- parity with rendered/ENV/kubernetes
def without_pulumi_annotations(inputs: dict[str, Any]) -> dict[str, Any]:
    """The registered body less the one annotation the program adds for the provider (pulumi.com/patchForce)."""
    meta = dict(inputs["metadata"])
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if not k.startswith("pulumi.com/")}
    assert {k for k in meta.get("annotations") or {} if k.startswith("pulumi.com/")} == {"pulumi.com/patchForce"}
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    return {**inputs, "metadata": meta}


def assert_parity(recorder: Recorder, expected: dict[str, dict[str, Any]], where: str) -> None:
    """Each object is registered as exactly one resource of its kind, name and namespace, with the same body."""
    registered = recorder.by_identity()
    assert expected, f"{where} is empty"
    seen = set()
    for filename, obj in expected.items():
        meta = obj["metadata"]
        key = (kinds.type_token(obj["apiVersion"], obj["kind"]), meta["name"], meta.get("namespace"))
        assert key in registered, f"{where}/{filename} ({key}) was not registered"
        inputs = without_pulumi_annotations(registered[key].inputs)
        assert numbers_as_floats(inputs) == numbers_as_floats(obj), f"{where}/{filename} differs"
        seen.add(key)
    extra = set(registered) - seen
    assert not extra, f"registered but not in {where}: {sorted(extra)}"


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_every_committed_rendered_object_is_registered_once_with_the_same_spec(env: str) -> None:
    assert_parity(run_program(env), rendered_objects(ROOT / "rendered" / env),
                  f"rendered/{env}/kubernetes (if this alone fails, run `perfstack render {env}`)")


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_every_freshly_rendered_object_is_registered_once_with_the_same_spec(env: str, tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-c", "from generators.cli import main; main()", "render", env, "--out", str(tmp_path / env)],
                   cwd=ROOT, check=True, capture_output=True)
    assert_parity(run_program(env), rendered_objects(tmp_path / env), f"fresh render of {env}")


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_nothing_else_of_substance_is_registered(env: str) -> None:
    recorder = run_program(env)
    profile, source = load_profile(env, ROOT / "profiles")
    rendered = len(render(profile, source).objects)
    other = [r for r in recorder.resources if r not in recorder.kubernetes() and r not in recorder.secrets()]
    assert sorted({r.typ for r in other if r.custom}) == ["pulumi:providers:kubernetes"]
    assert {r.typ for r in other if not r.custom} <= COMPONENT_TYPES
    assert len([r for r in other if r.custom]) == 1
    assert len(recorder.kubernetes()) == rendered
    assert len(recorder.secrets()) == 2


def test_provider_updates_config_in_place_and_renders_yaml_on_request(tmp_path: Path) -> None:
    provider = next(r for r in run_program("prod").resources if r.typ == "pulumi:providers:kubernetes")
    # JSON-encoded provider inputs: "true" is the mock's view of a bool provider option.
    assert provider.inputs["enableConfigMapMutable"] in (True, "true")
    assert "renderYamlToDirectory" not in provider.inputs
    out = tmp_path / "manifests"
    provider = next(r for r in run_program("prod", renderYamlToDirectory=str(out)).resources
                    if r.typ == "pulumi:providers:kubernetes")
    assert provider.inputs["renderYamlToDirectory"] == str(out)


# ---------------------------------------------------------------- secrets
@pytest.mark.parametrize("env", ["dev", "prod"])
def test_passwords_are_secret_outputs_and_in_no_other_object(env: str) -> None:
    recorder = run_program(env)
    profile, _ = load_profile(env, ROOT / "profiles")
    secrets = {r.inputs["metadata"]["name"]: r for r in recorder.secrets()}
    assert set(secrets) == {profile.secrets.postgres_password.secret, profile.secrets.redis_password.secret}
    for secret in secrets.values():
        assert secret.inputs["stringData"][SECRET_SIG], "stringData is not marked secret"
        assert secret.inputs["metadata"]["namespace"] == profile.namespace
    pg = secrets[profile.secrets.postgres_password.secret].inputs["stringData"]["value"]
    assert pg[profile.secrets.postgres_password.key] == PASSWORDS["perfstack:postgresPassword"]
    # PgBouncer's auth_file line, with the quote in the password doubled as PgBouncer reads it.
    assert pg["userlist.txt"] == f'"{profile.pgbouncer.auth_user}" "pg-""S3cret\'-4f1a"\n'
    redis = secrets[profile.secrets.redis_password.secret].inputs["stringData"]["value"]
    assert redis[profile.secrets.redis_password.key] == PASSWORDS["perfstack:redisPassword"]
    for r in recorder.kubernetes():
        text = json.dumps(r.inputs)
        for password in PASSWORDS.values():
            assert password not in text and json.dumps(password)[1:-1] not in text, f"{r.typ} {r.name} holds a password"


def test_missing_secret_config_stops_the_program_before_any_resource() -> None:
    asyncio.set_event_loop(asyncio.new_event_loop())
    recorder = Recorder()
    pulumi.runtime.set_mocks(recorder, project="perfstack", stack="prod", preview=False)
    config = {k: v for k, v in stack_config("prod").items() if k != "perfstack:redisPassword"}
    pulumi.runtime.set_all_config(config, secret_keys=["perfstack:postgresPassword"])

    @pulumi.runtime.test
    def program() -> None:
        runpy.run_path(str(MAIN), run_name="__main__")

    with pytest.raises(Exception, match="redisPassword"):
        program()
    assert recorder.resources == []


def test_password_set_in_plain_text_is_refused_before_any_resource() -> None:
    asyncio.set_event_loop(asyncio.new_event_loop())
    recorder = Recorder()
    pulumi.runtime.set_mocks(recorder, project="perfstack", stack="prod", preview=False)
    pulumi.runtime.set_all_config(stack_config("prod"), secret_keys=["perfstack:redisPassword"])

    @pulumi.runtime.test
    def program() -> None:
        runpy.run_path(str(MAIN), run_name="__main__")

    with pytest.raises(Exception, match="postgresPassword: set in plain text"):
        program()
    assert recorder.resources == []


# ---------------------------------------------------------------- one profile change, exactly its resources
def _changed(before: Recorder, after: Recorder) -> dict[tuple[str, str, str | None], set[str]]:
    a, b = before.by_identity(), after.by_identity()
    assert set(a) == set(b)
    changed = {}
    for key in a:
        la, lb = leaves(a[key].inputs), leaves(b[key].inputs)
        paths = {p for p in set(la) | set(lb) if la.get(p) != lb.get(p)}
        if paths:
            changed[key] = paths
    return changed


def _rendered_changes(env: str, path: str) -> set[tuple[str, str, str | None]]:
    """Objects whose rendered form differs between profiles/ENV and the edited copy."""
    def objects(profile_name: str, folder: Path) -> dict[tuple[str, str, str | None], dict[str, Any]]:
        profile, source = load_profile(profile_name, folder)
        return {(kinds.type_token(o["apiVersion"], o["kind"]), o["metadata"]["name"], o["metadata"].get("namespace")): o
                for o in render(profile, source).objects}
    before, after = objects(env, ROOT / "profiles"), objects(path, Path(path).parent)
    return {key for key in before if before[key] != after[key]}


def test_pool_size_change_touches_only_pgbouncer_config_and_its_pod_template(tmp_path: Path) -> None:
    folder = copy_profiles(tmp_path)
    edited = overlay(folder, "prod-bigger-pools", "prod", "pgbouncer: {default_pool_size: 21}\n")
    before, after = run_program("prod"), run_program("prod", profile=edited)
    changed = _changed(before, after)
    config_map = ("kubernetes:core/v1:ConfigMap", "pgbouncer", "ai-platform")
    deployment = ("kubernetes:apps/v1:Deployment", "pgbouncer", "ai-platform")
    assert changed[config_map] == {"data.pgbouncer.ini"}
    assert "default_pool_size = 21" in leaves(after.by_identity()[config_map].inputs)["data.pgbouncer.ini"]
    # The ConfigMap is updated in place; the pods roll because their template's checksum changed.
    assert changed[deployment] == {"spec.template.metadata.annotations.perfstack.io/config-checksum"}
    assert set(changed) == _rendered_changes("prod", edited)
    for untouched in ("redis", "postgres-settings"):
        assert not any(key[1] == untouched for key in changed)


def test_replica_change_touches_only_the_replica_count(tmp_path: Path) -> None:
    folder = copy_profiles(tmp_path)
    edited = overlay(folder, "prod-three-poolers", "prod", "pgbouncer: {replicas: 3}\n")
    changed = _changed(run_program("prod"), run_program("prod", profile=edited))
    assert changed[("kubernetes:apps/v1:Deployment", "pgbouncer", "ai-platform")] == {"spec.replicas"}
    assert set(changed) == _rendered_changes("prod", edited)


# ---------------------------------------------------------------- refused before anything is registered
def test_profile_failing_cross_component_checks_is_refused_before_any_resource(tmp_path: Path) -> None:
    folder = copy_profiles(tmp_path)
    # 20 replicas x 1 pool x (20 + 5) = 500 server connections against max_connections 200 - 3 reserved.
    edited = overlay(folder, "prod-too-many-poolers", "prod", "pgbouncer: {replicas: 20}\n")
    recorder = Recorder()
    with pytest.raises(Exception) as caught:
        run_program("prod", recorder, profile=edited)
    assert recorder.resources == [], "resources were registered before the refusal"
    message = str(caught.value)
    assert "pgbouncer_fits_postgres" in message
    assert "500 server connections" in message and "leaves 197" in message
    # Located in the profile (file:line: key), as `perfstack validate` reports it.
    assert re.search(r"profiles/[a-z-]+\.yaml:\d+:\d+: pgbouncer\.default_pool_size: pgbouncer_fits_postgres", message)


# ---------------------------------------------------------------- components, protection, outputs
def _resolve(output: pulumi.Output[Any]) -> Any:
    box: list[Any] = []
    output.apply(box.append)
    return box


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_components_outputs_and_protection(env: str) -> None:
    asyncio.set_event_loop(asyncio.new_event_loop())
    pulumi.runtime.set_mocks(Recorder(), project="perfstack", stack=env, preview=False)
    profile, source = load_profile(env, ROOT / "profiles")
    bundle = render(profile, source)
    urns: list[str] = []
    result: dict[str, Any] = {}

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        deployment = deploy(StackSettings(profile=env), "pw", "pw")
        result["deployment"] = deployment
        resources = [r for c in deployment.components.values() for r in c.resources.values()]
        return pulumi.Output.all(*[r.urn for r in resources]).apply(urns.extend)

    program()
    deployment = result["deployment"]
    # Every object is the child of the ComponentResource of its component (pgbouncer, redis, postgres, ...).
    assert len(urns) == len(bundle.objects)
    assert all("perfstack:index:Target$kubernetes:" in urn for urn in urns)
    assert {"pgbouncer", "redis", "postgres"} <= set(deployment.components)
    # The Namespace is the stack's only with kubernetes.manage_namespace (neither example profile sets it).
    assert ("namespace" in deployment.components) == profile.kubernetes.manage_namespace
    protected = {key for c in deployment.components.values() for key, r in c.resources.items() if r._protect}
    stateful = {f"{o['kind']}/{o['metadata']['name']}" for o in bundle.objects
                if (o["apiVersion"], o["kind"]) in kinds.STATEFUL_KINDS}
    assert protected == stateful
    if profile.kubernetes.postgres == "cloudnativepg":
        assert "Cluster/postgres" in protected
    outputs = deployment.outputs
    assert outputs["namespace"] == profile.namespace
    assert outputs["settingsDigest"] == bundle.digest()
    assert {"pgbouncer", "redis"} <= set(outputs["services"])
    if profile.kubernetes.postgres == "external":
        assert outputs["alterSystemSql"] == bundle.files["postgres/alter_system.sql"]
        assert outputs["alterSystemSql"].count("ALTER SYSTEM SET") >= 10
    else:
        assert "alterSystemSql" not in outputs


# ---------------------------------------------------------------- stack settings map onto profile keys
def test_every_stack_setting_is_optional_and_the_profile_is_the_stack_name() -> None:
    settings = StackSettings.from_config(_Config({}), "staging")
    assert settings == StackSettings(profile="staging")
    config = {"perfstack:kubeconfig": "kube/config", "perfstack:context": "prod-cluster", "perfstack:clusterId": "u-1",
              "perfstack:skipAwait": True, "perfstack:llmScaler": "keda"}
    settings = StackSettings.from_config(_Config(config), "prod")
    assert (settings.profile, settings.kubeconfig, settings.context, settings.cluster_id, settings.skip_await) == (
        "prod", "kube/config", "prod-cluster", "u-1", True)
    profile, _ = load_profile("prod", ROOT / "profiles")
    changed = apply(profile, settings)
    assert changed.autoscaling.llm.scaler == "keda"
    # Only the scaler changed; the section's durations survived.
    assert changed.autoscaling.llm.model_dump(exclude={"scaler"}) == profile.autoscaling.llm.model_dump(exclude={"scaler"})
    with pytest.raises(ProfileError, match="perfstack:llmScaler"):
        apply(profile, StackSettings(profile="prod", llm_scaler="vpa"))


def test_stack_settings_override_profile_keys() -> None:
    profile, _ = load_profile("prod", ROOT / "profiles")
    settings = StackSettings(profile="prod", namespace="perf-staging", prometheus_release="monitoring",
                             grafana_dashboard_label="grafana_dashboard=yes", dashboards="grafana-operator",
                             postgres="cloudnativepg")
    changed = apply(profile, settings)
    assert changed.namespace == "perf-staging"
    assert changed.kubernetes.prometheus_rule_labels["release"] == "monitoring"
    assert changed.kubernetes.dashboard_labels == {"grafana_dashboard": "yes"}
    assert changed.kubernetes.dashboards == "grafana-operator"
    assert changed.kubernetes.postgres == "cloudnativepg"
    # Everything else is the profile's, unchanged.
    assert changed.monitoring.release == "monitoring"  # the release selects the monitors too
    assert changed.model_dump(exclude={"namespace", "kubernetes", "monitoring"}) == profile.model_dump(
        exclude={"namespace", "kubernetes", "monitoring"})
    assert apply(profile, StackSettings(profile="prod")) == profile


def test_bad_stack_setting_is_refused_naming_the_config_key() -> None:
    profile, _ = load_profile("prod", ROOT / "profiles")
    with pytest.raises(ProfileError, match="perfstack:postgres"):
        apply(profile, StackSettings(profile="prod", postgres="aurora"))
    with pytest.raises(ProfileError, match="perfstack:grafanaDashboardLabel"):
        apply(profile, StackSettings(profile="prod", grafana_dashboard_label="no-equals-sign"))


def test_namespace_override_moves_every_object() -> None:
    recorder = run_program("prod", namespace="perf-staging")
    for r in recorder.kubernetes() + recorder.secrets():
        meta = r.inputs["metadata"]
        if r.typ == "kubernetes:core/v1:Namespace":
            assert meta["name"] == "perf-staging"
        else:
            assert meta.get("namespace") == "perf-staging", f"{r.typ} {r.name}"


def test_postgres_mode_from_stack_config() -> None:
    recorder = run_program("prod", postgres="cloudnativepg")
    types = {r.typ for r in recorder.kubernetes()}
    assert "kubernetes:postgresql.cnpg.io/v1:Cluster" in types
    assert not any(r.inputs["metadata"]["name"] == "postgres-settings" for r in recorder.kubernetes())
    cluster = next(r for r in recorder.kubernetes() if r.typ == "kubernetes:postgresql.cnpg.io/v1:Cluster")
    profile, _ = load_profile("prod", ROOT / "profiles")
    assert cluster.inputs["spec"]["postgresql"]["parameters"]["shared_buffers"] == "16GB"  # pgtune: 64GB / 4
    assert cluster.inputs["spec"]["bootstrap"]["initdb"]["secret"]["name"] == profile.secrets.postgres_password.secret


def test_prometheus_operator_off_leaves_out_its_objects() -> None:
    on = run_program("prod")
    off = run_program("prod", prometheusOperator="false")
    operator = {key for key in on.by_identity() if key[0].startswith("kubernetes:monitoring.coreos.com/")}
    assert set(off.by_identity()) == set(on.by_identity()) - operator


# ---------------------------------------------------------------- project files
def test_project_and_stack_files_agree() -> None:
    project = yaml.load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "perfstack"
    assert project["main"].rstrip("/") == "infra"
    assert project["stackConfigDir"].rstrip("/") == "stacks"
    assert project["runtime"]["name"] == "python"
    assert {"toolchain", "virtualenv"} & set(project["runtime"]["options"])
    declared = project["config"]
    types = {"string": str, "boolean": bool, "integer": int}
    for key, spec in declared.items():
        assert spec.get("description"), f"{key} has no description"
        assert spec["type"] in types
    # A secret key cannot have a default (Pulumi refuses it) and a key without one is required in every stack:
    # the passwords have default "" and the program refuses them unless set as secrets.
    assert not [key for key, spec in declared.items() if spec.get("secret")]
    assert {key: declared[key]["default"] for key in ("postgresPassword", "redisPassword")} == {
        "postgresPassword": "", "redisPassword": ""}
    required = {key for key, spec in declared.items() if "default" not in spec and not spec.get("secret")}
    # pulumi/pulumi#21797: a key without a default must be set in every stack; none is required.
    assert not required, f"keys every stack would have to set: {required}"
    # No stack file is committed: what the CLI writes there (encryptionsalt, secrets, kubeconfig) is per deployer.
    assert not list((ROOT / "stacks").glob("Pulumi.*.yaml"))
    ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", "stacks/Pulumi.dev.yaml"])
    assert ignored.returncode == 0, "stacks/Pulumi.*.yaml is not git-ignored"
    for env in ("dev", "prod"):
        # A stack with no settings deploys what rendered/ENV shows: its profile as it is.
        profile, _ = load_profile(env, ROOT / "profiles")
        assert apply(profile, StackSettings.from_config(_Config({}), env)) == profile


@dataclass
class _Config:
    values: dict[str, Any]

    def get(self, key: str) -> str | None:
        value = self.values.get(f"perfstack:{key}")
        return None if value is None else str(value)

    def require(self, key: str) -> str:
        return str(self.values[f"perfstack:{key}"])

    def get_bool(self, key: str) -> bool | None:
        value = self.values.get(f"perfstack:{key}")
        return None if value is None else bool(value)


# ---------------------------------------------------------------- import cost
def test_render_does_not_import_pulumi(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from generators.cli import main\n"
        f"try:\n    main(['render', 'prod', '--out', {str(tmp_path / 'out')!r}], standalone_mode=False)\n"
        "finally:\n    print(sorted(m for m in sys.modules if m.split('.')[0] in ('pulumi', 'pulumi_kubernetes')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout
    assert (tmp_path / "out" / "kubernetes").is_dir()


# ---------------------------------------------------------------- the RDS parameter group (opt-in)
def _rds_profile(tmp_path: Path, managed: str = "rds") -> Path:
    for name in ("base.yaml", "prod.yaml"):
        shutil.copy(ROOT / "profiles" / name, tmp_path / name)
    prod = tmp_path / "prod.yaml"
    text, count = re.subn(r"\npostgres:\n", f"\npostgres:\n  managed: {managed}\n", prod.read_text())
    assert count == 1
    prod.write_text(text)
    return prod


def test_rds_parameter_group_is_created_from_the_rendered_parameters(tmp_path: Path) -> None:
    pytest.importorskip("pulumi_aws", reason="pulumi-aws (the deploy extra) not installed")
    prod = _rds_profile(tmp_path)
    rendered = json.loads(render(load_profile(str(prod), tmp_path)[0]).files["postgres/rds-parameter-group.json"])
    recorder = run_program("prod", profile=str(prod), rdsParameterGroup="true")
    [group] = [r for r in recorder.resources if r.typ == "aws:rds/parameterGroup:ParameterGroup"]
    assert group.inputs["family"] == "postgres16" and group.inputs["name"] == rendered["DBParameterGroupName"]
    registered = {p["name"]: (p["value"], p["applyMethod"]) for p in group.inputs["parameters"]}
    assert registered == {p["ParameterName"]: (p["ParameterValue"], p["ApplyMethod"]) for p in rendered["Parameters"]}
    # a static parameter waits for a reboot, a dynamic one applies at once, as rendered
    assert registered["shared_buffers"][1] == "pending-reboot" and registered["work_mem"][1] == "immediate"
    assert "wal_level" not in registered  # RDS refuses it: reported, not sent
    # nothing secret in the group
    for password in PASSWORDS.values():
        assert password not in json.dumps(group.inputs)


def test_rds_parameter_group_is_not_created_without_the_opt_in(tmp_path: Path) -> None:
    prod = _rds_profile(tmp_path)
    recorder = run_program("prod", profile=str(prod))
    assert not [r for r in recorder.resources if r.typ.startswith("aws:")]
    assert recorder.kubernetes()  # the rest of the stack is deployed as before


@pytest.mark.parametrize("managed", ["self-managed", "cloudsql"])
def test_rds_parameter_group_for_a_database_not_on_rds_is_refused_before_any_resource(tmp_path: Path,
                                                                                      managed: str) -> None:
    prod = _rds_profile(tmp_path, managed)
    recorder = Recorder()
    with pytest.raises(Exception, match=r"rdsParameterGroup: the profile's database is not on RDS"):
        run_program("prod", recorder, profile=str(prod), rdsParameterGroup="true")
    assert recorder.resources == []
