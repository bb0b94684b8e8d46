"""A real Kubernetes API server on loopback for the real-engine tests (tests/test_pulumi_real.py).

`start_cluster(workdir)` starts etcd (Debian's etcd-server) and kube-apiserver (built by scripts/build-tools)
on free loopback ports, with certificates generated here: a CA, the server's certificate for 127.0.0.1, a
service-account signing key, an admin client (group system:masters) and a test user, `perfstack-deployer`,
whose rights come from RBAC only (the ClusterRole below). Admission runs with the API server's default
plugins. It installs the CustomResourceDefinitions perfstack's objects use, read from the upstream projects'
own YAML at pinned versions, obtained through the Go module proxy (`go mod download`).

No kubelet, scheduler or controller-manager runs: pods never start, Deployments never become available and
namespaces are never finalized. Everything the API server and its admission judge (schemas, defaults,
CRD validation, RBAC) is judged; nothing that needs a node is.

`tools()` finds the Pulumi CLI and the pulumi-kubernetes provider: $PERFSTACK_TOOLS/bin (scripts/build-tools),
else `pulumi` (and `kube-apiserver`) on PATH with its installed plugins. The tests always start their own API
servers: they need a cluster they may fill, pin and tear down, and a second one without CRDs.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from generators.localservers import free_port, stop_process

TOOLS = Path(os.environ.get("PERFSTACK_TOOLS") or Path.home() / ".cache" / "perfstack-tools")
DEPLOYER = "perfstack-deployer"

# The upstream CRDs, by (Go module, version, file inside the module). The module proxy serves each
# project's source; the files are the projects' own generated definitions.
CRDS: list[tuple[str, str, str]] = [
    ("github.com/prometheus-operator/prometheus-operator", "v0.85.0",
     "example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml"),
    ("github.com/prometheus-operator/prometheus-operator", "v0.85.0",
     "example/prometheus-operator-crd/monitoring.coreos.com_probes.yaml"),
    ("github.com/prometheus-operator/prometheus-operator", "v0.85.0",
     "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"),
    ("github.com/prometheus-operator/prometheus-operator", "v0.85.0",
     "example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml"),
    ("github.com/kedacore/keda/v2", "v2.21.0", "config/crd/bases/keda.sh_scaledobjects.yaml"),
    ("github.com/kedacore/keda/v2", "v2.21.0", "config/crd/bases/keda.sh_triggerauthentications.yaml"),
    ("github.com/cloudnative-pg/cloudnative-pg", "v1.27.1", "config/crd/bases/postgresql.cnpg.io_clusters.yaml"),
    ("github.com/grafana/grafana-operator/v5", "v5.18.0",
     "config/crd/bases/grafana.integreatly.org_grafanadashboards.yaml"),
]


class ToolsMissing(RuntimeError):
    """The Pulumi CLI, the provider, etcd or kube-apiserver is not installed."""


@dataclass
class Tools:
    pulumi_bin: Path  # folder holding `pulumi` (and the provider, when built here)
    provider: Path | None  # pulumi-resource-kubernetes to register as a plugin, or None to use installed plugins
    provider_version: str | None
    kube_apiserver: Path | None
    etcd: Path | None


def tools() -> Tools:
    built = TOOLS / "bin"
    if (built / "pulumi").exists():
        version_file = built / "pulumi-resource-kubernetes.version"
        provider = built / "pulumi-resource-kubernetes"
        return Tools(built, provider if provider.exists() else None,
                     version_file.read_text().strip() if version_file.exists() else None,
                     built / "kube-apiserver" if (built / "kube-apiserver").exists() else None,
                     Path(shutil.which("etcd")) if shutil.which("etcd") else None)
    found = shutil.which("pulumi")
    if not found:
        raise ToolsMissing("no Pulumi CLI: run scripts/build-tools (or install pulumi and put it on PATH)")
    apiserver = shutil.which("kube-apiserver")
    etcd = shutil.which("etcd")
    return Tools(Path(found).parent, None, None, Path(apiserver) if apiserver else None,
                 Path(etcd) if etcd else None)


# ---------------------------------------------------------------- certificates
def _key():  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key) -> bytes:  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert(subject_cn: str, key, issuer=None, issuer_key=None, *, ca: bool = False,  # type: ignore[no-untyped-def]
          org: str | None = None, server: bool = False):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]
    if org:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    name = x509.Name(attrs)
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer.subject if issuer else name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                                        critical=True)
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.DNSName("kubernetes.default.svc"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def _pem_cert(cert) -> bytes:  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def write_certificates(folder: Path) -> dict[str, Path]:
    """CA, server, service-account and two client key pairs, as PEM files under folder."""
    from cryptography.hazmat.primitives import serialization

    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}

    def save(name: str, data: bytes) -> Path:
        path = folder / name
        path.write_bytes(data)
        path.chmod(0o600)
        files[name] = path
        return path

    ca_key = _key()
    ca = _cert("perfstack-test-ca", ca_key, ca=True)
    save("ca.crt", _pem_cert(ca))
    server_key = _key()
    save("server.key", _pem_key(server_key))
    save("server.crt", _pem_cert(_cert("kube-apiserver", server_key, ca, ca_key, server=True)))
    sa_key = _key()
    save("sa.key", _pem_key(sa_key))
    save("sa.pub", sa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    for user, org in (("admin", "system:masters"), (DEPLOYER, None)):
        key = _key()
        save(f"{user}.key", _pem_key(key))
        save(f"{user}.crt", _pem_cert(_cert(user, key, ca, ca_key, org=org)))
    return files


def kubeconfig(path: Path, server: str, certs: dict[str, Path], user: str, context: str,
               current: str | None = None) -> Path:
    """A kubeconfig with the cluster, one user (client certificate) and its context, plus a context `nowhere`
    (a closed port). current-context is `current` (default: `context`)."""
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": current or context,
        "clusters": [{"name": "perfstack-test", "cluster": {"server": server,
                                                            "certificate-authority": str(certs["ca.crt"])}},
                     {"name": "nowhere", "cluster": {"server": f"https://127.0.0.1:{free_port()}",
                                                     "certificate-authority": str(certs["ca.crt"])}}],
        "users": [{"name": user, "user": {"client-certificate": str(certs[f"{user}.crt"]),
                                          "client-key": str(certs[f"{user}.key"])}}],
        "contexts": [{"name": context, "context": {"cluster": "perfstack-test", "user": user}},
                     {"name": "nowhere", "context": {"cluster": "nowhere", "user": user}}],
    }
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    return path


# ---------------------------------------------------------------- servers
@dataclass
class Cluster:
    server: str
    admin_kubeconfig: Path
    deployer_kubeconfig: Path
    deployer_context: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def admin(self) -> Any:
        """An ApiClient authenticated as the admin user (system:masters)."""
        from kubernetes import config

        return config.new_client_from_config(str(self.admin_kubeconfig))

    def stop(self) -> None:
        for process in reversed(self.processes):
            stop_process(process)
        self.processes.clear()

    def log_tail(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" for log in self.logs
                         if log.exists())


def _wait_ready(url_check, process: subprocess.Popen[bytes], what: str, log: Path,  # type: ignore[no-untyped-def]
                timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log.read_text(errors='replace')[-4000:]}")
        if url_check():
            return
        time.sleep(0.25)
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s:\n{log.read_text(errors='replace')[-4000:]}")


def start_cluster(workdir: Path, found: Tools) -> Cluster:
    """etcd + kube-apiserver on loopback under workdir; the caller stops them (Cluster.stop)."""
    if found.etcd is None or found.kube_apiserver is None:
        raise ToolsMissing("etcd (apt-get install etcd-server) or kube-apiserver (scripts/build-tools) missing")
    certs = write_certificates(workdir / "pki")
    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    etcd_log, api_log = workdir / "etcd.log", workdir / "kube-apiserver.log"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with etcd_log.open("wb") as out:
            etcd = subprocess.Popen(
                [str(found.etcd), "--name", "perfstack-test", "--data-dir", str(workdir / "etcd"),
                 "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
                 "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
                 "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
                 "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
                 "--initial-cluster", f"perfstack-test=http://127.0.0.1:{peer_port}",
                 "--unsafe-no-fsync", "--quota-backend-bytes", str(2 << 30)],
                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "ETCD_UNSUPPORTED_ARCH": "amd64"})
        processes.append(etcd)
        import urllib.request

        def etcd_healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{etcd_port}/health", timeout=1) as response:
                    return b"true" in response.read()
            except OSError:
                return False

        _wait_ready(etcd_healthy, etcd, "etcd", etcd_log, 30)
        with api_log.open("wb") as out:
            api = subprocess.Popen(
                [str(found.kube_apiserver),
                 f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                 "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={api_port}",
                 f"--tls-cert-file={certs['server.crt']}", f"--tls-private-key-file={certs['server.key']}",
                 f"--client-ca-file={certs['ca.crt']}",
                 f"--service-account-key-file={certs['sa.pub']}",
                 f"--service-account-signing-key-file={certs['sa.key']}",
                 "--service-account-issuer=https://kubernetes.default.svc",
                 "--authorization-mode=RBAC",
                 # The API server's default admission plugins stay on; these are named so the test says so.
                 "--enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,ResourceQuota,"
                 "DefaultStorageClass,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy",
                 "--service-cluster-ip-range=10.96.0.0/16",
                 f"--cert-dir={workdir / 'apiserver-certs'}",
                 # No Service for the API itself: its endpoint would be a loopback address.
                 "--endpoint-reconciler-type=none",
                 "--profiling=false", "--watch-cache=false", "--v=1"],
                stdout=out, stderr=subprocess.STDOUT)
        processes.append(api)
        admin_kc = kubeconfig(workdir / "admin.kubeconfig", f"https://127.0.0.1:{api_port}", certs, "admin",
                              "perfstack-admin")
        # Its current-context leads nowhere: a run that ignores the stack's `context` setting fails.
        deployer_kc = kubeconfig(workdir / "deployer.kubeconfig", f"https://127.0.0.1:{api_port}", certs, DEPLOYER,
                                 "perfstack-test", current="nowhere")
        import ssl

        context = ssl.create_default_context(cafile=str(certs["ca.crt"]))
        context.load_cert_chain(str(certs["admin.crt"]), str(certs["admin.key"]))

        def api_ready() -> bool:
            try:
                with urllib.request.urlopen(f"https://127.0.0.1:{api_port}/readyz", timeout=2,
                                            context=context) as response:
                    return response.status == 200
            except OSError:
                return False

        _wait_ready(api_ready, api, "kube-apiserver", api_log, 120)
    except BaseException:
        for process in reversed(processes):
            stop_process(process)
        raise
    cluster = Cluster(f"https://127.0.0.1:{api_port}", admin_kc, deployer_kc, "perfstack-test", processes,
                      [etcd_log, api_log])
    return cluster


# ---------------------------------------------------------------- CRDs and RBAC
def crd_documents() -> list[dict[str, Any]]:
    """The upstream CRDs (CRDS), read from the modules `go mod download` brings into the module cache."""
    docs: list[dict[str, Any]] = []
    dirs: dict[tuple[str, str], Path] = {}
    for module, version, path in CRDS:
        if (module, version) not in dirs:
            out = subprocess.run(["go", "mod", "download", "-json", f"{module}@{version}"], check=True,
                                 capture_output=True, text=True, timeout=600)
            dirs[(module, version)] = Path(json.loads(out.stdout)["Dir"])
        text = (dirs[(module, version)] / path).read_text()
        docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return docs


def install_crds(cluster: Cluster) -> list[str]:
    """Create every CRD in CRDS and wait until each is Established; returns their names."""
    from kubernetes import client

    api = client.ApiextensionsV1Api(cluster.admin())
    names = []
    for doc in crd_documents():
        api.create_custom_resource_definition(doc)
        names.append(doc["metadata"]["name"])
    deadline = time.monotonic() + 60
    for name in names:
        while True:
            crd = api.read_custom_resource_definition(name)
            if any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or [])):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"CRD {name} not Established after 60 s")
            time.sleep(0.2)
    return names


DEPLOYER_GROUPS = ["", "apps", "autoscaling", "policy", "monitoring.coreos.com", "keda.sh", "postgresql.cnpg.io",
                   "grafana.integreatly.org"]


def grant_deployer(cluster: Cluster, namespaces: list[str]) -> None:
    """RBAC for the test user: read namespaces and CRDs cluster-wide, manage perfstack's kinds in `namespaces`."""
    from kubernetes import client

    rbac = client.RbacAuthorizationV1Api(cluster.admin())
    rbac.create_cluster_role({"metadata": {"name": "perfstack-deployer-cluster"}, "rules": [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch", "create", "patch",
                                                                    "update"]},
        {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
         "verbs": ["get", "list", "watch"]}]})
    rbac.create_cluster_role_binding({
        "metadata": {"name": "perfstack-deployer-cluster"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "perfstack-deployer-cluster"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": DEPLOYER}]})
    rbac.create_cluster_role({"metadata": {"name": "perfstack-deployer"}, "rules": [
        {"apiGroups": DEPLOYER_GROUPS, "resources": ["*"], "verbs": ["*"]}]})
    for namespace in namespaces:
        rbac.create_namespaced_role_binding(namespace, {
            "metadata": {"name": "perfstack-deployer"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "perfstack-deployer"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": DEPLOYER}]})
