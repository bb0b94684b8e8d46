"""The perfstack command line. Each command parses, calls one library function, and turns
perfstack's errors into exit code 2 (bad input) or 1 (a difference was found)."""

from __future__ import annotations

import difflib
import json
import os
import sys
import traceback
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from .errors import PerfstackError, UsageError

F = TypeVar("F", bound=Callable[..., Any])
FORMATS = click.Choice(["text", "json"])


def _fail(exc: PerfstackError) -> None:
    click.echo(f"perfstack: error:\n{exc}" if "\n" in str(exc) else f"perfstack: error: {exc}", err=True)
    sys.exit(2)


INTERNAL_ERROR_HINT = ("this is a bug in perfstack, not in your input: please report it with the command line and "
                       "the profile (secrets removed), and run with PERFSTACK_TRACEBACK=1 for the traceback")


def _internal(exc: BaseException) -> None:
    """Exit 3 for anything perfstack did not expect: one line and a hint, never a bare traceback."""
    if os.environ.get("PERFSTACK_TRACEBACK"):
        traceback.print_exc()
    text = " ".join(str(exc).split())[:300]
    click.echo(f"perfstack: internal error: {type(exc).__name__}: {text}\n{INTERNAL_ERROR_HINT}", err=True)
    sys.exit(3)


def handles_errors(func: F) -> F:
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PerfstackError as exc:
            _fail(exc)
        except OSError as exc:  # a disk or file the user named (full, read-only, gone): theirs to fix
            where = f" {exc.filename}" if exc.filename else ""
            click.echo(f"perfstack: error:{where}: {exc.strerror or exc}", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


class _Main(click.Group):
    """The command group: any exception no command handled becomes `perfstack: internal error` (exit 3)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except PerfstackError as exc:
            _fail(exc)
        except Exception as exc:  # noqa: BLE001 - the one place every unexpected exception ends
            _internal(exc)


def _profiles_dir(ctx: click.Context) -> Path:
    return Path(ctx.find_root().params.get("profiles_dir") or "profiles")


def load_bundle(ctx: click.Context, env: str) -> Any:
    from .render import render
    from .validation import load_profile

    profile, source = load_profile(env, _profiles_dir(ctx))
    return render(profile, source)


def _print_warnings(bundle: Any) -> None:
    for warning in bundle.warnings:
        click.echo(f"{bundle.profile.environment}: {warning}", err=True)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--profiles-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of profiles that ENV names refer to (default: profiles/).")
@click.version_option(package_name="perfstack")
def main(profiles_dir: Path | None) -> None:
    """perfstack: render one performance profile into every tuned setting of the stack."""


@main.command("render")
@click.argument("env", required=False)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder (default: rendered/ENV; with --all: the folder holding one folder per ENV).")
@click.option("--check", is_flag=True, help="Compare the folder with a fresh render; exit 1 when it differs.")
@click.option("--all", "all_envs", is_flag=True,
              help="Every profile in the profiles folder that is not `abstract: true`, whatever its name.")
@click.pass_context
@handles_errors
def render_command(ctx: click.Context, env: str | None, out: Path | None, check: bool, all_envs: bool) -> None:
    """Render ENV's profile into config files, Kubernetes objects and explain.json."""
    from .output import compare_folder, write_bundle

    if all_envs == (env is not None):
        raise UsageError("render needs ENV or --all (not both)")
    if all_envs:
        _render_all(ctx, out, check)
        return
    assert env is not None
    bundle = load_bundle(ctx, env)
    out_dir = out or Path("rendered") / bundle.profile.environment
    _print_warnings(bundle)
    if check:
        diff = compare_folder(bundle, out_dir)
        if not diff.clean:
            click.echo(f"{out_dir} is stale; run `perfstack render {env}`:")
            for line in diff.lines():
                click.echo(f"  {line}")
            sys.exit(1)
        click.echo(f"{out_dir} is up to date ({len(bundle.files)} files)")
        return
    write_bundle(bundle, out_dir)
    click.echo(f"rendered {bundle.profile.environment} -> {out_dir} ({len(bundle.files)} files)")


def deployed_profiles(folder: Path) -> list[Path]:
    """Every profile file in folder that is not `abstract: true`."""
    from .loader import load_source

    found = []
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        if load_source(path).data.get("abstract") is not True:
            found.append(path)
    return found


def _render_all(ctx: click.Context, out: Path | None, check: bool) -> None:
    from .errors import ProfileError
    from .output import compare_folder, write_bundle

    root = out or Path("rendered")
    folder = _profiles_dir(ctx)
    paths = deployed_profiles(folder)
    if not paths:
        raise UsageError(f"{folder}: no profile to render (every one is abstract, or the folder is empty)")
    bundles, problems = [], []
    for path in paths:
        try:
            bundles.append(load_bundle(ctx, str(path)))
        except ProfileError as exc:
            problems.append(str(exc))
    if problems:  # nothing is written unless every profile renders
        raise UsageError("\n".join(problems))
    if not check:  # every output folder is perfstack's before any is written
        from .output import check_owned, target_folder

        for bundle in bundles:
            check_owned(target_folder(root / bundle.profile.environment))
    stale = False
    for bundle in bundles:
        _print_warnings(bundle)
        out_dir = root / bundle.profile.environment
        if check:
            diff = compare_folder(bundle, out_dir)
            if diff.clean:
                click.echo(f"{out_dir} is up to date ({len(bundle.files)} files)")
            else:
                stale = True
                click.echo(f"{out_dir} is stale; run `perfstack render --all`:")
                for line in diff.lines():
                    click.echo(f"  {line}")
        else:
            write_bundle(bundle, out_dir)
            click.echo(f"rendered {bundle.profile.environment} -> {out_dir} ({len(bundle.files)} files)")
    if check and root.is_dir():
        known = {b.profile.environment for b in bundles}
        for orphan in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                             and p.name not in known):
            stale = True
            click.echo(f"{orphan} has no profile in {folder}: remove it or add {folder}/{orphan.name}.yaml")
    if stale:
        sys.exit(1)


@main.command("validate")
@click.argument("envs", nargs=-1, required=True)
@click.pass_context
@handles_errors
def validate_command(ctx: click.Context, envs: tuple[str, ...]) -> None:
    """Load, type-check and run the cross-component checks on each ENV."""
    from .errors import ProfileError
    from .render import render
    from .validation import load_profile

    problems: list[str] = []
    for env in envs:
        try:
            profile, source = load_profile(env, _profiles_dir(ctx))
            findings = render(profile, source).warnings  # the one gate: checks, lint, the generators' warnings
        except ProfileError as exc:
            problems.append(str(exc))
            continue
        for finding in findings:
            click.echo(f"{profile.environment}: {finding}", err=True)
        click.echo(f"{profile.environment}: ok")
    if problems:
        click.echo("perfstack: error:\n" + "\n".join(problems), err=True)
        sys.exit(2)


@main.command("explain")
@click.argument("env")
@click.argument("name", required=False)
@click.option("--format", "fmt", type=FORMATS, default="text")
@click.pass_context
@handles_errors
def explain_command(ctx: click.Context, env: str, name: str | None, fmt: str) -> None:
    """Show each rendered setting with the rule and inputs that chose it (NAME: TARGET.KEY, TARGET or cost)."""
    from .checks import margins
    from .explain import provenance
    from .render import config_parts, render
    from .validation import load_profile

    profile, source = load_profile(env, _profiles_dir(ctx))
    bundle = render(profile, source)
    found_margins = margins(profile, config_parts(profile))
    items = bundle.settings
    if name == "cost" or not name:
        from .cost import format_cost, monthly

        cost = monthly(bundle.profile.model_dump(mode="json"), bundle.objects)
        if name == "cost":
            click.echo(json.dumps(cost, indent=2, sort_keys=True) if fmt == "json" else format_cost(cost), nl=False)
            return
    if name:
        items = [s for s in bundle.settings if s.name == name or s.target == name]
        if not items:
            known = sorted({s.name for s in bundle.settings} | {s.target for s in bundle.settings})
            hint = difflib.get_close_matches(name, known, n=1)
            raise UsageError(f"{name}: no such setting in {bundle.profile.environment}"
                             + (f"; did you mean '{hint[0]}'?" if hint else ""))
    if fmt == "json":
        click.echo(json.dumps([{**s.explain(), **provenance(s, source, found_margins)} for s in items], indent=2,
                              sort_keys=True))
        return
    for s in items:
        why = provenance(s, source, found_margins)
        click.echo(f"{s.name} = {s.text}")
        click.echo(f"  rule:   {s.rule}")
        if s.inputs:
            click.echo("  inputs: " + ", ".join(f"{k}={v}" for k, v in s.inputs.items()))
        if why["set_by"]:
            click.echo("  set by: " + ", ".join(f"{k['key']} ({k['where']})" for k in why["set_by"]))
        for feed in why["feeds"]:
            click.echo(f"  feeds:  {feed['check']}: {feed['margin']}")
    if not name:
        click.echo(format_cost(cost), nl=False)


@main.command("diff")
@click.argument("env_a", required=False)
@click.argument("env_b", required=False)
@click.option("--base", "base_ref", metavar="REF", help="Compare ENV at git revision REF (the pull request's base) "
              "with the working tree or --head; each revision renders with its own generators.")
@click.option("--head", "head_ref", metavar="REF", help="With --base: the head revision (default: the working tree).")
@click.option("--all", "all_envs", is_flag=True, help="With --base: every profile that is not abstract, in one report.")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text")
@click.pass_context
@handles_errors
def diff_command(ctx: click.Context, env_a: str | None, env_b: str | None, base_ref: str | None,
                 head_ref: str | None, all_envs: bool, fmt: str) -> None:
    """Differences between two environments (ENV_A ENV_B), or of ENV between two revisions (ENV --base REF)."""
    if all_envs:
        if env_a is not None or base_ref is None:
            raise UsageError("diff --all needs --base REF and no ENV")
        from .review import format_reviews, review

        folder = _profiles_dir(ctx)
        results = [review(path.stem, folder, base_ref, head_ref) for path in deployed_profiles(folder)]
        click.echo(format_reviews(results, fmt), nl=False)
        sys.exit(max((r.exit_code for r in results), default=0))
    if env_a is None:
        raise UsageError("diff needs ENV_A ENV_B, ENV --base REF, or --all --base REF")
    if base_ref is not None or head_ref is not None:
        if env_b is not None or base_ref is None:
            raise UsageError("diff ENV --base REF [--head REF] compares one environment between revisions; "
                             "diff ENV_A ENV_B compares two environments")
        from .review import format_review, review

        result = review(env_a, _profiles_dir(ctx), base_ref, head_ref)
        click.echo(format_review(result, fmt), nl=False)
        sys.exit(result.exit_code)
    if env_b is None:
        raise UsageError("diff needs two environments (ENV_A ENV_B) or one and --base REF")
    from .compare import diff_bundles, format_diff

    a, b = load_bundle(ctx, env_a), load_bundle(ctx, env_b)
    name_a, name_b = a.profile.environment, b.profile.environment
    if name_a == name_b:  # two files of one environment: label the columns by what was typed
        name_a, name_b = env_a, env_b
    click.echo(format_diff(diff_bundles(a, b), name_a, name_b, fmt), nl=False)


@main.command("schema")
def schema_command() -> None:
    """Print the JSON Schema of the profile (for editors)."""
    from .profile import json_schema

    click.echo(json_schema(), nl=False)


class _BenchGroup(click.Group):
    """`perfstack bench ENV ...` is the stack bench (`bench stack`); `perfstack bench vector ENV` the vector one."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["stack", *args]
        return super().parse_args(ctx, args)


@main.group("bench", cls=_BenchGroup)
def bench_group() -> None:
    """Benchmarks on real local servers: `bench ENV` (PostgreSQL, PgBouncer, Redis) or `bench vector ENV`."""


def _int_list(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[int, ...]:
    if not value:
        return ()
    try:
        numbers = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of whole numbers") from None
    if any(n < 1 or n > 1000 for n in numbers):
        raise click.BadParameter(f"{value!r}: every value must lie between 1 and 1000")
    return numbers


@bench_group.command("vector")
@click.argument("env")
@click.option("--vectors", type=click.IntRange(10, 2_000_000), default=None,
              help="Vectors in the data set (default: vector.expected_vectors, at most 20000).")
@click.option("--queries", type=click.IntRange(1, 100_000), default=200, show_default=True)
@click.option("--ef-search", "ef_search", callback=_int_list, help="ef_search values, e.g. 10,20,40,80,160,320.")
@click.option("--m", "m", callback=_int_list, help="HNSW m values to build (default: vector.m).")
@click.option("--ef-construction", "ef_construction", callback=_int_list,
              help="ef_construction values to build (default: vector.ef_construction).")
@click.option("--engine", type=click.Choice(["chroma", "pgvector"]), default=None, help="Default: vector.engine.")
@click.option("--png", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Draw the curve here.")
@click.option("--write", "write", is_flag=True, help="Write the chosen ef_search (m, ef_construction) to the profile.")
@click.option("--format", "fmt", type=FORMATS, default="text")
@click.pass_context
@handles_errors
def bench_vector_command(ctx: click.Context, env: str, vectors: int | None, queries: int, ef_search: tuple[int, ...],
                         m: tuple[int, ...], ef_construction: tuple[int, ...], engine: str | None, png: Path | None,
                         write: bool, fmt: str) -> None:
    """Measure recall@k and latency across ef_search; exit 1 when no setting meets the recall target within the SLO."""
    from .loader import resolve_profile_path
    from .validation import load_profile
    from .vector_bench import Options, format_report, plot, run, write_back

    profile, _source = load_profile(env, _profiles_dir(ctx))
    report = run(profile, Options(vectors=vectors, queries=queries, ef_search=ef_search, m=m,
                                  ef_construction=ef_construction, engine=engine),
                 lambda message: click.echo(message, err=True))
    if png:
        plot(report, png)
    click.echo(json.dumps(report.to_dict(), indent=2, sort_keys=True) if fmt == "json" else format_report(report),
               nl=fmt == "json")
    if write and report.chosen and profile.vector:
        path = resolve_profile_path(env, _profiles_dir(ctx))
        write_back(path, report.chosen, profile.vector)
        click.echo(f"wrote vector.ef_search {report.chosen.ef_search} to {path}", err=True)
    sys.exit(0 if report.chosen else 1)


@bench_group.command("stack")
@click.argument("env")
@click.option("--local-hardware", is_flag=True,
              help="Render hardware.postgres (memory, cpus) and hardware.redis.memory from this machine.")
@click.option("--scale", type=click.IntRange(1, 10000), default=10, show_default=True,
              help="pgbench scale factor (100,000 accounts each).")
@click.option("--duration", type=click.IntRange(1, 3600), default=30, show_default=True, help="Seconds of load.")
@click.option("--clients", type=click.IntRange(1, 5000), default=None,
              help="Cap on concurrent clients (default: autoscaling.api.max_replicas x app.db_pool.size).")
@click.option("--script", type=click.Choice(["tpcb-like", "simple-update", "select-only"]), default="tpcb-like",
              show_default=True, help="pgbench built-in script.")
@click.option("--format", "fmt", type=FORMATS, default="text")
@click.pass_context
@handles_errors
def bench_command(ctx: click.Context, env: str, local_hardware: bool, scale: int, duration: int,
                  clients: int | None, script: str, fmt: str) -> None:
    """Load local PostgreSQL, PgBouncer and Redis started from ENV's rendered files; exit 1 when an SLO is missed."""
    from .bench import BenchOptions, format_report, run_bench
    from .validation import load_profile

    profile, _source = load_profile(env, _profiles_dir(ctx))
    live = sys.stderr.isatty()

    def progress(message: str) -> None:  # a live line on a terminal, one line per update otherwise
        click.echo(f"\r\033[K{message[:150]}" if live else message, err=True, nl=not live)

    report = run_bench(profile, BenchOptions(scale=scale, duration=duration, clients=clients,
                                             local_hardware=local_hardware, script=script), progress)
    if live:
        click.echo("\r\033[K", err=True, nl=False)
    if fmt == "json":
        click.echo(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    else:
        click.echo(format_report(report), nl=False)
    sys.exit(0 if report.slo_met else 1)


@main.command("drift")
@click.argument("env")
@click.option("--postgres", "postgres_dsn", envvar="PERFSTACK_DRIFT_POSTGRES", metavar="DSN",
              help="PostgreSQL DSN of a read-only role (env PERFSTACK_DRIFT_POSTGRES).")
@click.option("--pgbouncer", "pgbouncer_dsn", envvar="PERFSTACK_DRIFT_PGBOUNCER", metavar="DSN",
              help="PgBouncer admin console DSN, dbname=pgbouncer (env PERFSTACK_DRIFT_PGBOUNCER).")
@click.option("--redis", "redis_url", envvar="PERFSTACK_DRIFT_REDIS", metavar="URL",
              help="Redis URL, redis://[:password@]host:port/0 (env PERFSTACK_DRIFT_REDIS).")
@click.option("--prometheus", "prometheus_url", envvar="PERFSTACK_DRIFT_PROMETHEUS", metavar="URL",
              help="Prometheus base URL, e.g. http://prometheus:9090 (env PERFSTACK_DRIFT_PROMETHEUS).")
@click.option("--kubernetes", is_flag=True, help="Compare the rendered Kubernetes objects (kubeconfig or in-cluster).")
@click.option("--context", "kube_context", metavar="NAME", help="kubeconfig context for --kubernetes.")
@click.option("--pulumi-stack", metavar="NAME", help="Pulumi stack to refresh and preview (needs the pulumi CLI).")
@click.option("--timeout", "timeout_s", type=click.FloatRange(0.1, 3600), default=None, metavar="SECONDS",
              help="One deadline for the whole run (default: 5 s per target); a target not answered by then is "
                   "reported as an error.")
@click.option("--format", "fmt", type=FORMATS, default="text")
@click.pass_context
@handles_errors
def drift_command(ctx: click.Context, env: str, postgres_dsn: str | None, pgbouncer_dsn: str | None,
                  redis_url: str | None, prometheus_url: str | None, kubernetes: bool, kube_context: str | None,
                  pulumi_stack: str | None, timeout_s: float | None, fmt: str) -> None:
    """Compare live systems with what ENV's profile renders; exit 1 on drift, 2 when a target is unreadable."""
    from .drift import Endpoints, detect, format_report

    if kube_context and not kubernetes:
        raise UsageError("--context needs --kubernetes")
    endpoints = Endpoints(postgres=postgres_dsn, pgbouncer=pgbouncer_dsn, redis=redis_url,
                          prometheus=prometheus_url, kubernetes=kubernetes, kube_context=kube_context,
                          pulumi_stack=pulumi_stack)
    if not endpoints.any():
        raise UsageError("drift needs at least one live system: --postgres, --pgbouncer, --redis, --prometheus, "
                         "--kubernetes or --pulumi-stack")
    report = detect(load_bundle(ctx, env), endpoints, timeout_s)
    click.echo(format_report(report, fmt), nl=False)
    sys.exit(report.exit_code)


@main.command("advise")
@click.argument("env")
@click.option("--postgres", "postgres_dsn", envvar="PERFSTACK_ADVISE_POSTGRES", metavar="DSN",
              help="PostgreSQL DSN of the advise role (env PERFSTACK_ADVISE_POSTGRES).")
@click.option("--redis", "redis_url", envvar="PERFSTACK_ADVISE_REDIS", metavar="URL",
              help="Redis URL, redis://[:password@]host:port/0 (env PERFSTACK_ADVISE_REDIS).")
@click.option("--prometheus", "prometheus_url", envvar="PERFSTACK_ADVISE_PROMETHEUS", metavar="URL",
              help="Prometheus base URL (env PERFSTACK_ADVISE_PROMETHEUS).")
@click.option("--since", default="24h", show_default=True, help="Window of the Prometheus queries (30m, 24h, 7d).")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text")
@click.option("--write", is_flag=True, help="Apply the proposed edits to ENV's profile file (comments and layout kept).")
@click.option("--sql", "sql_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where the SQL for review goes (default: perfstack-advise-ENV.sql); perfstack never runs it.")
@click.pass_context
@handles_errors
def advise_command(ctx: click.Context, env: str, postgres_dsn: str | None, redis_url: str | None,
                   prometheus_url: str | None, since: str, fmt: str, write: bool, sql_path: Path | None) -> None:
    """Read how the stack runs and propose profile edits and SQL; exit 1 when there is advice, 2 when a target is unreadable."""
    from . import units
    from .advise import Sources, advise
    from .advise.edits import write as write_profile
    from .advise.report import format_report, sql_file
    from .loader import display_path, resolve_profile_path
    from .validation import load_profile

    try:
        window = units.format_duration(units.parse_duration(since))
    except units.UnitError as exc:
        raise UsageError(f"--since {since!r}: {exc}") from None
    sources = Sources(postgres=postgres_dsn, redis=redis_url, prometheus=prometheus_url, since=window)
    if not sources.any():
        raise UsageError("advise needs at least one live system: --postgres, --redis or --prometheus")
    profile, source = load_profile(env, _profiles_dir(ctx))
    path = resolve_profile_path(env, _profiles_dir(ctx))
    result = advise(profile, source, sources, display_path(path))
    click.echo(format_report(result, fmt), nl=False)
    if result.sql:
        target = sql_path or Path(f"perfstack-advise-{profile.environment}.sql")
        try:
            target.write_text(sql_file(result))
        except OSError as exc:
            raise UsageError(f"--sql {target}: cannot write: {exc.strerror}") from None
        click.echo(f"SQL for review written to {target} (perfstack did not run it)", err=True)
    if write and result.edits:
        write_profile(path, result.edits)
        click.echo(f"{display_path(path)}: {len(result.edits)} edit(s) written", err=True)
    sys.exit(result.exit_code)
