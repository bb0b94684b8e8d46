"""Monthly cost of an environment at its minimum and maximum replicas, from the profile's `pricing:`.

What is priced is what the rendered Kubernetes objects request, so the figure follows the renderers:
each Deployment and StatefulSet's container requests (CPU, memory, `nvidia.com/gpu` at
`pricing.gpu_hour[hardware.gpu.model]`) times its replicas, which an HPA or KEDA ScaledObject that
targets it turns into a min..max range; PersistentVolumeClaim templates and a CloudNativePG Cluster's
storage at `storage_gib_month`; the application's own Deployment (not rendered) from `app.requests`
times `autoscaling.api` replicas; and an external PostgreSQL (`kubernetes.postgres: external`) as the
cheapest `pricing.managed_postgres` size with at least `hardware.postgres`'s memory and CPUs.
A month is 730 hours. Prices are the profile's; base.yaml's are examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

HOURS_PER_MONTH = 730
GIB = 1024**3
GPU_RESOURCE = "nvidia.com/gpu"


def _quantity(value: Any) -> float:
    from kubernetes.utils.quantity import parse_quantity  # imported here: only diff and explain price things

    return float(parse_quantity(str(value)))


@dataclass(frozen=True)
class Line:
    component: str
    item: str  # what is priced, e.g. "cpu", "memory", "gpu H100", "storage", "managed postgres db.m6g.4xlarge"
    quantity: float  # per replica: cores, GiB, GPUs, GiB of storage, instances
    unit_price: float | None  # per hour (storage: per GiB-month); None: no price in the profile
    replicas_min: int
    replicas_max: int
    monthly: bool = False  # unit_price is already per month (storage)

    def cost(self, replicas: int) -> float:
        if self.unit_price is None:
            return 0.0
        hours = 1 if self.monthly else HOURS_PER_MONTH
        return self.quantity * replicas * self.unit_price * hours

    def to_dict(self) -> dict[str, Any]:
        return {"component": self.component, "item": self.item, "quantity": round(self.quantity, 4),
                "unit_price": self.unit_price, "per": "GiB-month" if self.monthly else "hour",
                "replicas_min": self.replicas_min, "replicas_max": self.replicas_max,
                "min": round(self.cost(self.replicas_min), 2), "max": round(self.cost(self.replicas_max), 2)}


def _scalers(objects: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    ranges: dict[str, tuple[int, int]] = {}
    for obj in objects:
        spec = obj.get("spec") or {}
        target = (spec.get("scaleTargetRef") or {}).get("name")
        if obj.get("kind") == "HorizontalPodAutoscaler" and target:
            ranges[target] = (int(spec.get("minReplicas", 1)), int(spec["maxReplicas"]))
        elif obj.get("kind") == "ScaledObject" and target:
            ranges[target] = (int(spec.get("minReplicaCount", 0)), int(spec.get("maxReplicaCount", 100)))
    return ranges


def _requests(pod_spec: dict[str, Any]) -> dict[str, float]:
    total: dict[str, float] = {}
    for container in pod_spec.get("containers") or []:
        resources = container.get("resources") or {}
        wanted = resources.get("requests") or resources.get("limits") or {}
        for name, value in wanted.items():
            total[name] = total.get(name, 0.0) + _quantity(value)
    return total


def lines(profile: dict[str, Any], objects: list[dict[str, Any]]) -> tuple[list[Line], list[str]]:
    """Priced lines and notes (prices the profile lacks) for one rendered environment."""
    pricing = profile.get("pricing") or {}
    gpu_model = ((profile.get("hardware") or {}).get("gpu") or {}).get("model")
    gpu_price = (pricing.get("gpu_hour") or {}).get(gpu_model) if gpu_model else None
    notes: list[str] = []
    out: list[Line] = []
    scalers = _scalers(objects)

    def pod(component: str, requests: dict[str, float], low: int, high: int) -> None:
        if requests.get("cpu"):
            out.append(Line(component, "cpu (cores)", requests["cpu"], pricing.get("cpu_hour"), low, high))
        if requests.get("memory"):
            out.append(Line(component, "memory (GiB)", requests["memory"] / GIB, pricing.get("memory_gib_hour"),
                            low, high))
        if requests.get(GPU_RESOURCE):
            out.append(Line(component, f"gpu {gpu_model}", requests[GPU_RESOURCE], gpu_price, low, high))
            if gpu_price is None:
                notes.append(f"pricing.gpu_hour has no price for hardware.gpu.model {gpu_model!r}: GPUs not counted")

    for obj in objects:
        kind, spec = obj.get("kind"), obj.get("spec") or {}
        name = (obj.get("metadata") or {}).get("name", "")
        if kind in ("Deployment", "StatefulSet"):
            fixed = int(spec.get("replicas", 1))
            low, high = scalers.get(name, (fixed, fixed))
            pod(name, _requests((spec.get("template") or {}).get("spec") or {}), low, high)
            for claim in spec.get("volumeClaimTemplates") or []:
                size = (((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")
                if size:
                    out.append(Line(name, "storage (GiB)", _quantity(size) / GIB, pricing.get("storage_gib_month"),
                                    low, high, monthly=True))
        elif kind == "Cluster":  # CloudNativePG: one pod per instance, each with its own volume
            instances = int(spec.get("instances", 1))
            resources = spec.get("resources") or {}
            wanted = resources.get("requests") or resources.get("limits") or {}
            pod(name, {k: _quantity(v) for k, v in wanted.items()}, instances, instances)
            if size := (spec.get("storage") or {}).get("size"):
                out.append(Line(name, "storage (GiB)", _quantity(size) / GIB, pricing.get("storage_gib_month"),
                                instances, instances, monthly=True))

    app = profile.get("app") or {}
    deployment = app.get("deployment", "api")
    scaling = (profile.get("autoscaling") or {}).get("api") or {}
    low, high = scalers.get(deployment, (scaling.get("min_replicas", 1), scaling.get("max_replicas", 1)))
    if requests := app.get("requests"):
        pod(deployment, {"cpu": float(requests.get("cpu") or 0), "memory": float(requests.get("memory") or 0)},
            low, high)

    if (profile.get("kubernetes") or {}).get("postgres") == "external":
        hw = (profile.get("hardware") or {}).get("postgres") or {}
        fits = [s for s in pricing.get("managed_postgres") or []
                if s["memory"] >= hw.get("memory", 0) and s["cpus"] >= (hw.get("cpus") or 0)]
        if fits:
            size = min(fits, key=lambda s: s["hour"])
            out.append(Line("postgres", f"managed postgres {size['name']}", 1, size["hour"], 1, 1))
        elif pricing:
            notes.append("no pricing.managed_postgres size has hardware.postgres's memory and CPUs: "
                         "the external database is not counted")
    return out, notes


def monthly(profile: dict[str, Any], objects: list[dict[str, Any]]) -> dict[str, Any] | None:
    """{currency, note, min, max, lines, notes}; None when the profile has no pricing section."""
    pricing = profile.get("pricing")
    if not pricing:
        return None
    priced, notes = lines(profile, objects)
    return {"currency": pricing.get("currency", "USD"), "note": pricing.get("source", ""),
            "hours_per_month": HOURS_PER_MONTH,
            "min": round(sum(x.cost(x.replicas_min) for x in priced), 2),
            "max": round(sum(x.cost(x.replicas_max) for x in priced), 2),
            "lines": [x.to_dict() for x in priced], "notes": notes}


def compare_cost(base: dict[str, Any], head: dict[str, Any]) -> dict[str, Any] | None:
    """Before, after and delta for two snapshots; a side without pricing is priced with the other's."""
    prices_b = (base.get("profile") or {}).get("pricing")
    prices_h = (head.get("profile") or {}).get("pricing")
    if not prices_b and not prices_h:
        return None
    notes = []

    def side(snapshot: dict[str, Any], own: Any, other: Any, label: str) -> dict[str, Any] | None:
        if snapshot.get("missing"):
            return None
        profile = dict(snapshot.get("profile") or {})
        if not own:
            profile["pricing"] = other
            notes.append(f"{label} has no pricing section: priced with the other side's")
        return monthly(profile, snapshot.get("objects") or [])

    b = side(base, prices_b, prices_h, "base")
    h = side(head, prices_h, prices_b, "head")
    pricing = prices_h or prices_b or {}
    delta = None if b is None or h is None else {"min": round(h["min"] - b["min"], 2),
                                                   "max": round(h["max"] - b["max"], 2)}
    return {"currency": pricing.get("currency", "USD"), "note": pricing.get("source", ""), "base": b, "head": h,
            "delta": delta, "notes": notes}


def format_cost(cost: dict[str, Any] | None) -> str:
    """The explain command's cost section."""
    if cost is None:
        return "cost: no pricing section in the profile\n"
    cur = cost["currency"]
    out = [f"monthly cost: {cost['min']:,.2f} {cur} at min replicas, {cost['max']:,.2f} {cur} at max replicas"
           f" ({HOURS_PER_MONTH} h; {cost['note']})"]
    for line in cost["lines"]:
        price = "no price" if line["unit_price"] is None else f"{line['unit_price']:g} {cur}/{line['per']}"
        out.append(f"  {line['component']}: {line['item']} {line['quantity']:g} x {line['replicas_min']}.."
                   f"{line['replicas_max']} replicas at {price} = {line['min']:,.2f}..{line['max']:,.2f} {cur}")
    out += [f"  note: {n}" for n in cost["notes"]]
    return "\n".join(out) + "\n"
