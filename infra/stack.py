"""Stack settings (stacks/Pulumi.ENV.yaml) and how they map onto profile keys.

The stack only chooses where and how the profile is deployed (namespace, the labels the cluster's
operators select by, which operators exist); every tuned number still comes from the profile.
Overrides go through the profile model again, so a bad value is refused like a bad profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import TypeAdapter, ValidationError

from generators.errors import Problem, ProfileError
from generators.profile import Profile

PROJECT = "perfstack"


@dataclass(frozen=True)
class StackSettings:
    profile: str
    namespace: str | None = None
    prometheus_release: str | None = None  # kube-prometheus-stack's release label value
    grafana_dashboard_label: str | None = None  # "key=value" the Grafana sidecar selects by
    dashboards: str | None = None  # configmap | grafana-operator
    postgres: str | None = None  # cloudnativepg | external
    prometheus_operator: bool = True  # false: skip monitoring.coreos.com objects (no CRDs in the cluster)
    render_yaml_to_directory: str | None = None
    llm_scaler: str | None = None  # hpa | keda (autoscaling.llm.scaler)
    kubeconfig: str | None = None  # path (relative to the project root) or kubeconfig text; default: kubectl's
    context: str | None = None  # kubeconfig context; default: its current-context
    cluster_id: str | None = None  # the kube-system namespace UID of the stack's cluster; refuses any other
    skip_await: bool = False  # annotate every object pulumi.com/skipAwait (clusters without nodes)
    rds_parameter_group: bool = False  # create the rendered RDS DB parameter group (postgres.managed rds; pulumi-aws)

    @classmethod
    def from_config(cls, config: Any, stack: str | None = None) -> StackSettings:
        """Read the `perfstack:` keys from a pulumi.Config (or anything with get/get_bool/require).

        Every key is optional: the profile defaults to the stack's name (stack dev -> profiles/dev.yaml) and
        every other key to the profile's own value.
        """
        flag = config.get_bool("prometheusOperator")
        profile = config.get("profile") or stack
        if not profile:
            profile = config.require("profile")
        return cls(
            profile=profile,
            namespace=config.get("namespace") or None,
            prometheus_release=config.get("prometheusRelease") or None,
            grafana_dashboard_label=config.get("grafanaDashboardLabel") or None,
            dashboards=config.get("dashboards") or None,
            postgres=config.get("postgres") or None,
            prometheus_operator=True if flag is None else flag,
            render_yaml_to_directory=config.get("renderYamlToDirectory") or None,
            llm_scaler=config.get("llmScaler") or None,
            kubeconfig=config.get("kubeconfig") or None,
            context=config.get("context") or None,
            cluster_id=config.get("clusterId") or None,
            skip_await=bool(config.get_bool("skipAwait")),
            rds_parameter_group=bool(config.get_bool("rdsParameterGroup")),
        )

    def profile_updates(self) -> dict[str, Any]:
        """The profile keys these settings set, as a nested mapping (empty when the stack sets none)."""
        kubernetes: dict[str, Any] = {}
        if self.prometheus_release:
            kubernetes["prometheus_rule_labels"] = {"release": self.prometheus_release}
        if self.grafana_dashboard_label:
            key, sep, value = self.grafana_dashboard_label.partition("=")
            if not sep or not key.strip():
                raise ProfileError([Problem(f"expected key=value, got {self.grafana_dashboard_label!r}",
                                            file=f"stack config {PROJECT}:grafanaDashboardLabel")])
            kubernetes["dashboard_labels"] = {key.strip(): value.strip()}
        if self.dashboards:
            kubernetes["dashboards"] = self.dashboards
        if self.postgres:
            kubernetes["postgres"] = self.postgres
        updates: dict[str, Any] = {"kubernetes": kubernetes} if kubernetes else {}
        if self.prometheus_release:  # the release selects the monitors as well as the rules
            updates["monitoring"] = {"release": self.prometheus_release}
        if self.llm_scaler:
            updates["autoscaling"] = {"llm": {"scaler": self.llm_scaler}}
        if self.namespace:
            updates["namespace"] = self.namespace
        return updates


_CONFIG_KEYS = {"namespace": "namespace", "kubernetes.prometheus_rule_labels": "prometheusRelease",
                "monitoring": "prometheusRelease",
                "kubernetes.dashboard_labels": "grafanaDashboardLabel", "kubernetes.dashboards": "dashboards",
                "kubernetes.postgres": "postgres", "autoscaling": "llmScaler"}


def apply(profile: Profile, settings: StackSettings) -> Profile:
    """The profile with the stack's overrides, each validated by the profile model's own field or section."""
    updates = settings.profile_updates()
    if not updates:
        return profile
    changed: dict[str, Any] = {}
    try:
        for key, value in updates.items():
            current = getattr(profile, key)
            if key == "autoscaling":
                # One field of a section whose durations would not survive a dump and re-validation (ms ints).
                llm = current.llm
                scaler_type: Any = Annotated[type(llm).model_fields["scaler"].annotation, type(llm).model_fields["scaler"]]
                scaler: Any = TypeAdapter(scaler_type).validate_python(value["llm"]["scaler"])
                changed[key] = current.model_copy(update={"llm": llm.model_copy(update={"scaler": scaler})})
            elif isinstance(value, dict):
                # Only this section goes through the model again: its fields are strings and label maps.
                data = current.model_dump()
                for sub, sub_value in value.items():
                    data[sub] = {**data[sub], **sub_value} if isinstance(sub_value, dict) else sub_value
                changed[key] = type(current).model_validate(data)
            else:
                field = Profile.model_fields[key]
                annotated: Any = Annotated[field.annotation, field]  # a runtime type form: TypeAdapter takes it
                changed[key] = TypeAdapter(annotated).validate_python(value)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            dotted = ".".join(str(p) for p in (key, *error["loc"]))
            name = next((v for k, v in _CONFIG_KEYS.items() if dotted.startswith(k)), dotted)
            problems.append(Problem(error["msg"], file=f"stack config {PROJECT}:{name}", key=dotted))
        raise ProfileError(problems) from None
    return profile.model_copy(update=changed)


def profile_path(name: str, root: Path) -> tuple[str, Path]:
    """`perfstack:profile` is a name under profiles/ or a path (relative to the project root)."""
    if name.endswith((".yaml", ".yml")) or "/" in name:
        path = Path(name)
        return str(path if path.is_absolute() else root / path), root / "profiles"
    return name, root / "profiles"
