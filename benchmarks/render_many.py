"""Render N generated environments in one process and print seconds and peak memory as JSON.

Each environment is the prod profile with different hardware, workload, storage, PostgreSQL version,
Redis memory and replica counts, validated like a profile file (units as strings) and rendered to its
own folder, as `perfstack render` does. Used by benchmarks/run.py; runs alone so that its peak memory
(resource.getrusage maxrss) is its own.

    python3 benchmarks/render_many.py [N] [--env prod] [--profiles-dir profiles]
    python3 benchmarks/render_many.py --breakdown [--env prod]     where one render's time goes
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

# perfstack's modules are imported inside the functions, so that --breakdown times their imports too.

MEMORIES = ["2GiB", "4GiB", "8GiB", "16GiB", "32GiB", "64GiB", "128GiB", "256GiB"]
CPUS = [1, 2, 4, 8, 16, 32]
if TYPE_CHECKING:
    from generators.profile import Profile

WORKLOADS = ["web", "oltp", "dw", "mixed", "desktop"]
STORAGE = ["ssd", "nvme", "hdd", "san"]
VERSIONS = [13, 14, 15, 16, 17]


def generated_profiles(base: dict[str, Any], count: int) -> list[Profile]:
    """count distinct, valid variations of the base profile's data."""
    from generators.profile import Profile

    combos = itertools.product(MEMORIES, CPUS, WORKLOADS, STORAGE, VERSIONS)
    profiles: list[Profile] = []
    for index, (memory, cpus, workload, storage, version) in enumerate(combos):
        if len(profiles) == count:
            break
        data = copy.deepcopy(base)
        data["environment"] = f"gen-{index:03d}"
        data["hardware"]["postgres"] = {"memory": memory, "cpus": cpus, "storage": storage, "os": "linux"}
        data["hardware"]["redis"] = {"memory": ["512MiB", "1GiB", "4GiB", "8GiB"][index % 4], "cpus": 1 + index % 2}
        data["postgres"] = {**data.get("postgres", {}), "workload": workload, "version": version}
        profiles.append(Profile.model_validate(data))
    return profiles


def breakdown(env: str, profiles_dir: Path) -> dict[str, float]:
    """Where one render's time goes, in ms, in a fresh process: imports, loading the profile, each stage of
    the render (config parts, gate, alerts, dashboards, objects), the Kubernetes objects' YAML, writing."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    from generators import alerts, cli, dashboards, k8s  # noqa: F401 (cli: its import time)
    from generators import render as stages
    from generators.output import write_bundle
    from generators.render import render
    from generators.validation import load_profile

    timings["imports"] = time.perf_counter() - started
    mark = time.perf_counter()
    profile, source = load_profile(env, profiles_dir)
    timings["load_profile"] = time.perf_counter() - mark
    mark = time.perf_counter()
    bundle = render(profile, source)
    timings["render"] = time.perf_counter() - mark
    out = Path(tempfile.mkdtemp(prefix="perfstack-breakdown-"))
    try:
        mark = time.perf_counter()
        write_bundle(bundle, out / env)
        timings["write"] = time.perf_counter() - mark
    finally:
        shutil.rmtree(out, ignore_errors=True)
    # The same work again, stage by stage (modules now warm).
    mark = time.perf_counter()
    parts = stages.config_parts(profile)
    timings["render.config_parts"] = time.perf_counter() - mark
    mark = time.perf_counter()
    stages.gate(profile, parts, source)
    timings["render.gate (checks)"] = time.perf_counter() - mark
    mark = time.perf_counter()
    rules = stages.alert_rules(profile, parts)
    alerts_part = alerts.render(profile, rules)
    timings["render.alerts"] = time.perf_counter() - mark
    mark = time.perf_counter()
    boards = dashboards.render(profile, rules)
    timings["render.dashboards"] = time.perf_counter() - mark
    mark = time.perf_counter()
    _core, objects = stages.kubernetes_objects(profile, parts, rules, boards)
    stages.gate(profile, parts, source, objects)
    timings["render.objects + lint"] = time.perf_counter() - mark
    del alerts_part
    mark = time.perf_counter()
    for obj in bundle.objects:
        k8s.dump_yaml(obj)
    timings[f"render.kubernetes_yaml ({len(bundle.objects)} objects)"] = time.perf_counter() - mark
    return {key: round(value * 1000, 1) for key, value in timings.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("count", nargs="?", type=int, default=100)
    parser.add_argument("--env", default="prod")
    parser.add_argument("--profiles-dir", type=Path, default=Path("profiles"))
    parser.add_argument("--breakdown", action="store_true", help="time the phases of one render of ENV instead")
    args = parser.parse_args()
    if args.breakdown:
        print(json.dumps(breakdown(args.env, args.profiles_dir)))
        return 0
    from generators.loader import load_source, resolve_profile_path
    from generators.output import write_bundle
    from generators.render import render

    base = load_source(resolve_profile_path(args.env, args.profiles_dir)).data
    out = Path(tempfile.mkdtemp(prefix="perfstack-render-many-"))
    failures: list[str] = []
    files = 0
    try:
        started = time.perf_counter()
        profiles = generated_profiles(dict(base), args.count)
        for profile in profiles:
            try:
                bundle = render(profile)
            except Exception as exc:  # a generated profile the checks refuse is reported, not fatal
                failures.append(f"{profile.environment}: {str(exc).splitlines()[0]}")
                continue
            write_bundle(bundle, out / profile.environment)
            files += len(bundle.files)
        seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(json.dumps({"environments": len(profiles), "rendered": len(profiles) - len(failures), "files": files,
                      "seconds": round(seconds, 3), "peak_rss_mib": round(_maxrss_mib(), 1),
                      "failures": failures[:5]}))
    return 0 if not failures else 1


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports kB


if __name__ == "__main__":
    sys.exit(main())
