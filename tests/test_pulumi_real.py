"""`pulumi up` for real: the Pulumi engine and the pulumi-kubernetes provider against a real kube-apiserver.

The tools come from scripts/build-tools (or `pulumi` on PATH); the cluster is etcd + kube-apiserver on
loopback started by tests/realcluster.py, with RBAC on (the stack deploys as the test user
`perfstack-deployer`), admission on, and the upstream CRDs of prometheus-operator, KEDA, CloudNativePG and
grafana-operator installed. No kubelet or controller runs: pods never start, so the stack runs with
`skipAwait` (Pulumi does not wait for rollouts); everything the API server and its admission judge is judged.

The Automation API drives each run from pytest, on a copy of the project (Pulumi.yaml, stacks/, profiles/)
with a local file backend. The program runs in this process (the Automation API's inline mode: the CLI's
engine calls back into it), which is how it runs without the Python language host, whose Go module the
module proxy does not serve.

Without the tools the tests skip, saying how to build them; scripts/test sets PERFSTACK_REAL_ENGINE=1, and
then missing tools fail the run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from generators import llm as llm_rules
from generators.drift import kubernetes as kube_drift
from generators.render import render
from generators.validation import load_profile

from . import realcluster as rc
from .conftest import REPO

pytestmark = pytest.mark.xdist_group("real-engine")  # one cluster per worker: keep these tests together

PASSPHRASE = "perfstack-test-passphrase"
PASSWORDS = {"postgresPassword": "pg-test-only-Secret-1", "redisPassword": "redis-test-only-Secret-2"}
NAMESPACES = {"dev": "ai-platform-dev", "prod": "ai-platform"}
ADOPT_NAMESPACE = "perfstack-adopt"


@dataclass
class Engine:
    tools: rc.Tools
    cluster: rc.Cluster
    workdir: Path

    def project(self, name: str) -> Path:
        """A copy of the project's Pulumi files and profiles (runs write stack files; the repo's stay as they are)."""
        folder = self.workdir / f"project-{name}"
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir()
        shutil.copy(REPO / "Pulumi.yaml", folder / "Pulumi.yaml")
        shutil.copytree(REPO / "stacks", folder / "stacks")
        shutil.copytree(REPO / "profiles", folder / "profiles")
        (folder / "infra").mkdir()
        return folder

    def stack(self, project: Path, name: str, passwords: bool = True, **settings: str) -> Any:
        """Create the stack `name` in the project copy; `settings` are `perfstack:` keys (the passwords are added).

        The kubeconfig and context reach the provider only through the stack: $KUBECONFIG names no file here.
        """
        from pulumi import automation as auto

        from infra import program

        stack = auto.create_or_select_stack(
            stack_name=name, project_name="perfstack", program=lambda: program.main(root=project),
            opts=auto.LocalWorkspaceOptions(work_dir=str(project)))
        config = {"kubeconfig": str(self.cluster.deployer_kubeconfig), "context": self.cluster.deployer_context,
                  "skipAwait": "true", **settings}
        values = {f"perfstack:{k}": auto.ConfigValue(v) for k, v in config.items()}
        if passwords:
            values.update({f"perfstack:{k}": auto.ConfigValue(v, secret=True) for k, v in PASSWORDS.items()})
        stack.set_all_config(values)
        return stack


def _fail_or_skip(message: str) -> None:
    if os.environ.get("PERFSTACK_REAL_ENGINE") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    try:
        found = rc.tools()
        if found.kube_apiserver is None or found.etcd is None:
            raise rc.ToolsMissing("kube-apiserver (scripts/build-tools) or etcd (apt-get install etcd-server) missing")
    except rc.ToolsMissing as exc:
        _fail_or_skip(f"{exc}; scripts/build-tools builds them")
    workdir = tmp_path_factory.mktemp("real-engine")
    cluster = rc.start_cluster(workdir, found)
    patch = pytest.MonkeyPatch()
    try:
        rc.install_crds(cluster)
        from kubernetes import client

        core = client.CoreV1Api(cluster.admin())
        # The namespaces exist before the stack (the API runs there); the stack does not own them.
        for namespace in (*NAMESPACES.values(), ADOPT_NAMESPACE):
            core.create_namespace({"metadata": {"name": namespace, "labels": {"team": "platform"}}})
        rc.grant_deployer(cluster, [*NAMESPACES.values(), ADOPT_NAMESPACE])
        home = workdir / "pulumi-home"
        env = {"PATH": f"{found.pulumi_bin}{os.pathsep}{os.environ['PATH']}", "PULUMI_HOME": str(home),
               "PULUMI_BACKEND_URL": f"file://{workdir / 'state'}", "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
               "PULUMI_SKIP_UPDATE_CHECK": "true", "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
               "KUBECONFIG": str(workdir / "no-such-kubeconfig")}
        (workdir / "state").mkdir()
        for key, value in env.items():
            patch.setenv(key, value)
        if found.provider is not None:
            subprocess.run([str(found.pulumi_bin / "pulumi"), "plugin", "install", "resource", "kubernetes",
                            found.provider_version or "4.34.2", "--file", str(found.provider)],
                           check=True, capture_output=True, timeout=120)
        yield Engine(found, cluster, workdir)
    finally:
        patch.undo()
        cluster.stop()


# ---------------------------------------------------------------- helpers
def _quantity(value: Any) -> Decimal | None:
    return kube_drift.parse_quantity(value)


def assert_subset(want: Any, have: Any, path: str = "") -> None:
    """Every field of `want` is in `have` with the same value (quantities by value); `have` may hold more."""
    if isinstance(want, dict):
        assert isinstance(have, dict), f"{path}: expected a mapping, got {have!r}"
        for key, value in want.items():
            assert key in have, f"{path}.{key}: missing on the live object"
            assert_subset(value, have[key], f"{path}.{key}")
    elif isinstance(want, list):
        assert isinstance(have, list) and len(have) == len(want), f"{path}: {want!r} != {have!r}"
        for i, (a, b) in enumerate(zip(want, have, strict=True)):
            assert_subset(a, b, f"{path}[{i}]")
    elif want != have:
        a, b = _quantity(want), _quantity(have)
        assert a is not None and a == b, f"{path}: rendered {want!r}, live {have!r}"


def rendered_objects(env: str) -> list[dict[str, Any]]:
    """Every object in the committed rendered/ENV/kubernetes/ files."""
    folder = REPO / "rendered" / env / "kubernetes"
    return [yaml.safe_load(path.read_text()) for path in sorted(folder.glob("*.yaml"))]


def live(engine: Engine, obj: dict[str, Any]) -> dict[str, Any] | None:
    api = engine.cluster.admin()
    try:
        return kube_drift.read_object(api, obj)
    finally:
        api.close()


def assert_live_matches_rendered(engine: Engine, env: str) -> None:
    objects = rendered_objects(env)
    assert objects
    for obj in objects:
        have = live(engine, obj)
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        assert have is not None, f"{name}: rendered but not in the cluster"
        assert_subset({k: v for k, v in obj.items()}, have, name)
        managers = {m.get("manager", "") for m in have["metadata"].get("managedFields", [])}
        assert any(m.startswith("pulumi-kubernetes") for m in managers), f"{name}: not written by Pulumi ({managers})"
        assert have["metadata"]["annotations"].get("pulumi.com/skipAwait") == "true"


def resources_of(stack: Any) -> list[dict[str, Any]]:
    return list(stack.export_stack().deployment.get("resources") or [])


def kubernetes_resources(stack: Any) -> list[dict[str, Any]]:
    return [r for r in resources_of(stack) if r["type"].startswith("kubernetes:")
            and not r["type"].startswith("kubernetes:pulumi")]


def changed_urns(stack: Any, **kwargs: Any) -> set[str]:
    """The URNs a preview would change (every step that is not `same`)."""
    urns: set[str] = set()

    def on_event(event: Any) -> None:
        pre = getattr(event, "resource_pre_event", None)
        if pre is not None and pre.metadata is not None:
            op = getattr(pre.metadata.op, "value", str(pre.metadata.op))
            if op not in ("same", "read"):
                urns.add(pre.metadata.urn)

    stack.preview(on_event=on_event, color="never", **kwargs)
    return urns


def drift(engine: Engine, env: str) -> tuple[int, dict[str, Any]]:
    """`perfstack drift ENV --kubernetes --context ... --pulumi-stack ENV --format json`, in process."""
    from click.testing import CliRunner

    from generators.cli import main

    result = CliRunner().invoke(main, ["drift", env, "--kubernetes", "--context", engine.cluster.deployer_context,
                                       "--pulumi-stack", env, "--format", "json"],
                                env={"KUBECONFIG": str(engine.cluster.deployer_kubeconfig)}, catch_exceptions=False)
    return result.exit_code, json.loads(result.stdout)


def urn_of(obj: dict[str, Any]) -> str:
    from infra import kinds

    return f"{kinds.type_token(obj['apiVersion'], obj['kind'])}::{kinds.resource_name(obj)}"


# ---------------------------------------------------------------- dev: the whole life of a stack
def test_dev_up_read_back_preview_drift_edit_destroy(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from kubernetes import client
    from pulumi import automation as auto

    project = engine.project("dev")
    monkeypatch.chdir(project)
    # No stack file is committed: the stack sets only where to deploy (every key has a default in Pulumi.yaml;
    # without them the engine refuses a stack that leaves a key unset) and the profile decides everything else.
    assert not list((project / "stacks").glob("Pulumi.*.yaml"))
    stack = engine.stack(project, "dev")
    result = stack.up(color="never")
    assert result.summary.result == "succeeded"
    admin = engine.cluster.admin()
    core = client.CoreV1Api(admin)
    # Every rendered object exists as rendered (fields the server adds aside), written by Pulumi.
    assert_live_matches_rendered(engine, "dev")
    # PgBouncer and Redis survive node drains: budgets the API server accepted, and spread over nodes.
    policy = client.PolicyV1Api(admin)
    apps = client.AppsV1Api(admin)
    for name, min_available in (("pgbouncer", 1), ("redis", 1)):
        budget = policy.read_namespaced_pod_disruption_budget(name, NAMESPACES["dev"])
        assert budget.spec.min_available == min_available
        assert budget.spec.selector.match_labels["app.kubernetes.io/name"] == name
        affinity = apps.read_namespaced_deployment(name, NAMESPACES["dev"]).spec.template.spec.affinity
        term = affinity.pod_anti_affinity.preferred_during_scheduling_ignored_during_execution[0].pod_affinity_term
        assert term.topology_key == "kubernetes.io/hostname"
    # The Secrets the rendered objects refer to hold the stack's secret values, and nothing else does.
    secret = core.read_namespaced_secret("postgres-credentials", NAMESPACES["dev"])
    assert secret.type == "kubernetes.io/basic-auth"
    # The stack's outputs: the cluster identity it checked.
    kube_system = core.read_namespace("kube-system").metadata.uid
    assert result.outputs["clusterId"].value == kube_system
    # The namespace was there before and is not the stack's: no Namespace resource, its labels untouched.
    assert not [r for r in kubernetes_resources(stack) if r["type"] == "kubernetes:core/v1:Namespace"]
    assert core.read_namespace(NAMESPACES["dev"]).metadata.labels.get("team") == "platform"
    # The LLM Deployment waits as long as its startup probe may, plus a node scale-up: not Pulumi's 10 minutes.
    profile, _ = load_profile("dev", project / "profiles")
    budget = -(-llm_rules.startup_timeout(profile) // 1000) + 15 * 60
    llm = next(r for r in kubernetes_resources(stack) if r["type"] == "kubernetes:apps/v1:Deployment"
               and r["urn"].endswith(f"{NAMESPACES['dev']}/llm"))
    assert llm.get("customTimeouts", {}).get("create") == budget, llm.get("customTimeouts")
    assert budget > 600

    # Nothing changes right after `up`.
    stack.preview(expect_no_changes=True, color="never")

    # Drift: none after up, on both targets.
    code, doc = drift(engine, "dev")
    assert code == 0, json.dumps(doc["targets"], indent=1)[-3000:]
    assert {t["target"]: t["status"] for t in doc["targets"]} == {"kubernetes": "ok", "pulumi": "ok"}

    # Edits behind perfstack's back: an HPA's maxReplicas and a ConfigMap's data.
    autoscaling = client.AutoscalingV2Api(admin)
    hpa = autoscaling.read_namespaced_horizontal_pod_autoscaler("api", NAMESPACES["dev"])
    autoscaling.patch_namespaced_horizontal_pod_autoscaler(
        "api", NAMESPACES["dev"], {"spec": {"maxReplicas": hpa.spec.max_replicas + 7}})
    redis_conf = core.read_namespaced_config_map("redis", NAMESPACES["dev"]).data["redis.conf"]
    core.patch_namespaced_config_map("redis", NAMESPACES["dev"],
                                     {"data": {"redis.conf": redis_conf + "maxclients 7\n"}})
    code, doc = drift(engine, "dev")
    assert code == 1, doc
    targets = {t["target"]: t for t in doc["targets"]}
    kube_keys = {d["key"] for d in targets["kubernetes"]["differences"]}
    assert kube_keys == {f"HorizontalPodAutoscaler/{NAMESPACES['dev']}/api:spec.maxReplicas",
                         f"ConfigMap/{NAMESPACES['dev']}/redis:data.redis.conf"}, kube_keys
    pulumi_keys = {d["key"].split("$")[-1] for d in targets["pulumi"]["differences"]}  # keys are URNs
    assert pulumi_keys == {f"kubernetes:autoscaling/v2:HorizontalPodAutoscaler::{NAMESPACES['dev']}/api",
                           f"kubernetes:core/v1:ConfigMap::{NAMESPACES['dev']}/redis"}, pulumi_keys
    # `up --refresh` puts both back.
    stack.up(refresh=True, color="never")
    assert core.read_namespaced_config_map("redis", NAMESPACES["dev"]).data["redis.conf"] == redis_conf
    assert autoscaling.read_namespaced_horizontal_pod_autoscaler(
        "api", NAMESPACES["dev"]).spec.max_replicas == hpa.spec.max_replicas

    # A profile edit (PgBouncer's pool size) changes exactly the objects whose rendering changes.
    before = render(*load_profile("dev", project / "profiles"))
    dev_yaml = project / "profiles" / "dev.yaml"
    dev_yaml.write_text(dev_yaml.read_text().replace("pgbouncer:\n", "pgbouncer:\n  default_pool_size: 13\n", 1))
    after = render(*load_profile("dev", project / "profiles"))
    expected = {urn_of(a) for a, b in zip(before.objects, after.objects, strict=True) if a != b}
    assert any(u.endswith(f"ConfigMap::{NAMESPACES['dev']}/pgbouncer") for u in expected)
    changed = changed_urns(stack)
    assert {u.split("$")[-1] for u in changed} == expected, (changed, expected)
    stack.up(color="never")
    ini = core.read_namespaced_config_map("pgbouncer", NAMESPACES["dev"]).data["pgbouncer.ini"]
    assert "default_pool_size = 13" in ini
    stack.preview(expect_no_changes=True, color="never")

    # destroy leaves what the stack must not delete: the protected CloudNativePG Cluster and the namespace.
    with pytest.raises(auto.errors.CommandError, match="protect"):
        stack.destroy(color="never")
    stack.destroy(exclude_protected=True, color="never")
    assert core.read_namespace(NAMESPACES["dev"]).status.phase == "Active"
    for obj in rendered_objects("dev"):
        present = live(engine, obj) is not None
        # protected: the CloudNativePG Cluster, StatefulSets (the workers' queue Redis holds jobs) and
        # PersistentVolumeClaims (the LLM's model cache: a cold start to fill again)
        assert present == (obj["kind"] in ("Cluster", "StatefulSet", "PersistentVolumeClaim")), \
            f"{obj['kind']}/{obj['metadata']['name']} present={present}"
    admin.close()


# ---------------------------------------------------------------- prod
def test_prod_up_read_back_and_preview(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    project = engine.project("prod")
    monkeypatch.chdir(project)
    stack = engine.stack(project, "prod")
    result = stack.up(color="never")
    assert result.summary.result == "succeeded"
    assert_live_matches_rendered(engine, "prod")
    assert "ALTER SYSTEM SET" in result.outputs["alterSystemSql"].value
    stack.preview(expect_no_changes=True, color="never")
    profile, _ = load_profile("prod", project / "profiles")
    llm = next(r for r in kubernetes_resources(stack) if r["urn"].endswith(f"Deployment::{NAMESPACES['prod']}/llm"))
    assert llm["customTimeouts"]["create"] == -(-llm_rules.startup_timeout(profile) // 1000) + 15 * 60
    stack.destroy(exclude_protected=True, color="never")  # the workers' queue Redis StatefulSet is protected
    for obj in rendered_objects("prod"):
        kept = obj["kind"] in ("StatefulSet", "PersistentVolumeClaim")
        assert (live(engine, obj) is not None) == kept, f"{obj['kind']}/{obj['metadata']['name']} kept={kept}"


# ---------------------------------------------------------------- cluster pinning
def test_a_stack_pinned_to_another_cluster_is_refused_before_any_resource(engine: Engine,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from pulumi import automation as auto

    project = engine.project("pinned")
    monkeypatch.chdir(project)
    stack = engine.stack(project, "pinned", profile="dev", clusterId="00000000-0000-0000-0000-000000000000")
    with pytest.raises(auto.errors.CommandError) as caught:
        stack.up(color="never")
    message = str(caught.value)
    assert "is not this stack's" in message and "00000000-0000-0000-0000-000000000000" in message
    assert not kubernetes_resources(stack)
    # The context setting is what the provider uses: the kubeconfig's own current-context leads nowhere.
    stack = engine.stack(project, "pinned", profile="dev", context="nowhere", clusterId="")
    with pytest.raises(auto.errors.CommandError, match="cannot reach the Kubernetes API"):
        stack.preview(color="never")


# ---------------------------------------------------------------- operator prerequisites
def test_missing_operator_crds_and_namespace_are_named_before_any_resource(engine: Engine,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from pulumi import automation as auto

    bare = rc.start_cluster(engine.workdir / "bare", engine.tools)  # no CRDs, no namespaces
    try:
        project = engine.project("bare")
        monkeypatch.chdir(project)
        stack = engine.stack(project, "bare", profile="prod", kubeconfig=str(bare.admin_kubeconfig),
                             context="perfstack-admin", llmScaler="keda", dashboards="grafana-operator",
                             postgres="cloudnativepg")
        with pytest.raises(auto.errors.CommandError) as caught:
            stack.up(color="never")
        message = str(caught.value)
        for crd, setting in [("prometheusrules.monitoring.coreos.com", "prometheusOperator false"),
                             ("scaledobjects.keda.sh", "llmScaler hpa"),
                             ("clusters.postgresql.cnpg.io", "postgres external"),
                             ("grafanadashboards.grafana.integreatly.org", "dashboards configmap")]:
            assert f"CRD {crd} is not installed" in message and setting in message, (crd, message[-3000:])
        assert "namespace ai-platform does not exist" in message
        assert not kubernetes_resources(stack)
        stack = engine.stack(project, "bare-dev", profile="dev", kubeconfig=str(bare.admin_kubeconfig),
                             context="perfstack-admin")
        with pytest.raises(auto.errors.CommandError, match="probes.monitoring.coreos.com"):
            stack.preview(color="never")
    finally:
        bare.stop()


# ---------------------------------------------------------------- the namespace, when the stack owns it
def test_managed_namespace_is_adopted_and_never_deleted(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from kubernetes import client
    from pulumi import automation as auto

    project = engine.project("adopt")
    monkeypatch.chdir(project)
    (project / "profiles" / "adopt.yaml").write_text(
        f"extends: dev\nenvironment: adopt\nnamespace: {ADOPT_NAMESPACE}\nkubernetes:\n  manage_namespace: true\n")
    core = client.CoreV1Api(engine.cluster.admin())
    core.create_namespaced_config_map(ADOPT_NAMESPACE, {"metadata": {"name": "someone-elses"}, "data": {"a": "b"}})
    # An object of the stack's that exists already is not adopted silently (README, "Deploying").
    core.create_namespaced_config_map(ADOPT_NAMESPACE, {"metadata": {"name": "redis"}, "data": {"a": "b"}})
    stack = engine.stack(project, "adopt")  # the profile is the stack's name: profiles/adopt.yaml
    with pytest.raises(auto.errors.CommandError, match="already exists"):
        stack.up(color="never")
    core.delete_namespaced_config_map("redis", ADOPT_NAMESPACE)
    stack.up(color="never")
    namespace = core.read_namespace(ADOPT_NAMESPACE).metadata
    assert namespace.labels["app.kubernetes.io/managed-by"] == "perfstack"  # adopted: the rendered labels applied
    assert [r for r in kubernetes_resources(stack) if r["type"] == "kubernetes:core/v1:Namespace"]
    stack.destroy(exclude_protected=True, color="never")
    assert core.read_namespace(ADOPT_NAMESPACE).status.phase == "Active"  # retained, not deleted
    assert core.read_namespaced_config_map("someone-elses", ADOPT_NAMESPACE).data == {"a": "b"}
    assert core.list_namespaced_config_map(ADOPT_NAMESPACE, label_selector="app.kubernetes.io/part-of=perfstack"
                                           ).items == []


# ---------------------------------------------------------------- renderYamlToDirectory
def test_relative_render_yaml_to_directory_lands_under_the_project_root(engine: Engine,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    project = engine.project("render")
    monkeypatch.chdir(project / "infra")  # where `main: infra/` runs the program
    monkeypatch.delenv("KUBECONFIG")  # the provider refuses any kubeconfig, even $KUBECONFIG, beside a render folder
    stack = engine.stack(project, "render", profile="prod", renderYamlToDirectory="out/manifests")
    stack.up(color="never")
    written = sorted(p.name for p in (project / "out" / "manifests").rglob("*.yaml"))
    assert len(written) >= len(rendered_objects("prod")), written
    assert not (project / "infra" / "out").exists()


def test_passwords_from_the_environment_need_no_secret_in_the_stack_file(engine: Engine,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from kubernetes import client
    from pulumi import automation as auto

    from infra.program import PASSWORD_ENV

    project = engine.project("env-passwords")
    monkeypatch.chdir(project)
    stack = engine.stack(project, "prod", passwords=False)
    with pytest.raises(auto.errors.CommandError, match="PERFSTACK_POSTGRES_PASSWORD"):
        stack.preview(color="never")  # unset: refused by the program, naming both ways to set it
    for key, value in PASSWORDS.items():
        monkeypatch.setenv(PASSWORD_ENV[key], value)  # the program runs in this process
    stack.up(color="never")
    assert "secure:" not in (project / "stacks" / "Pulumi.prod.yaml").read_text()
    secret = client.CoreV1Api(engine.cluster.admin()).read_namespaced_secret("redis-credentials", NAMESPACES["prod"])
    import base64

    assert base64.b64decode(secret.data["password"]).decode() == PASSWORDS["redisPassword"]
    state = json.dumps(stack.export_stack().deployment)
    assert PASSWORDS["redisPassword"] not in state  # encrypted in the state, as secret config would be
    stack.destroy(exclude_protected=True, color="never")


def test_what_the_cli_writes_into_stack_files_stays_out_of_git(engine: Engine) -> None:
    project = engine.project("salt")
    engine.stack(project, "dev")  # stack init and `config set --secret`, as a deployer runs them
    written = (project / "stacks" / "Pulumi.dev.yaml").read_text()
    assert "encryptionsalt:" in written and "secure:" in written  # the passphrase salt and encrypted passwords
    assert PASSWORDS["postgresPassword"] not in written
    ignored = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", "stacks/Pulumi.dev.yaml"])
    assert ignored.returncode == 0, "stacks/Pulumi.dev.yaml would be committed"
    assert not subprocess.run(["git", "-C", str(REPO), "ls-files", "stacks/Pulumi.*.yaml"], capture_output=True,
                              text=True).stdout.strip()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
