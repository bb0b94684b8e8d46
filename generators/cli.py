"""The perfstack command line. Each command parses, calls one library function, and turns
perfstack's errors into exit code 2 (bad input) or 1 (a difference was found)."""

from __future__ import annotations

import difflib
import json
import sys
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


def handles_errors(func: F) -> F:
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PerfstackError as exc:
            _fail(exc)

    return wrapper  # type: ignore[return-value]


def _profiles_dir(ctx: click.Context) -> Path:
    return Path(ctx.find_root().params.get("profiles_dir") or "profiles")


def load_bundle(ctx: click.Context, env: str) -> Any:
    from .profile import load_profile
    from .render import render

    profile, source = load_profile(env, _profiles_dir(ctx))
    return render(profile, source)


def _print_warnings(bundle: Any) -> None:
    for warning in bundle.warnings:
        click.echo(f"{bundle.profile.environment}: {warning}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--profiles-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of profiles that ENV names refer to (default: profiles/).")
@click.version_option(package_name="perfstack")
def main(profiles_dir: Path | None) -> None:
    """perfstack: render one performance profile into every tuned setting of the stack."""


@main.command("render")
@click.argument("env")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder (default: rendered/ENV).")
@click.option("--check", is_flag=True, help="Compare the folder with a fresh render; exit 1 when it differs.")
@click.pass_context
@handles_errors
def render_command(ctx: click.Context, env: str, out: Path | None, check: bool) -> None:
    """Render ENV's profile into config files, Kubernetes objects and explain.json."""
    from .output import compare_folder, write_bundle

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


@main.command("validate")
@click.argument("envs", nargs=-1, required=True)
@click.pass_context
@handles_errors
def validate_command(ctx: click.Context, envs: tuple[str, ...]) -> None:
    """Load, type-check and run the cross-component checks on each ENV."""
    from .errors import ProfileError
    from .lint import lint
    from .profile import load_profile
    from .render import check

    problems: list[str] = []
    for env in envs:
        try:
            profile, source = load_profile(env, _profiles_dir(ctx))
            findings = check(profile, source)
            lint(profile, source)
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
    """Show each rendered setting with the rule and inputs that chose it (NAME: TARGET.KEY or TARGET)."""
    bundle = load_bundle(ctx, env)
    items = bundle.settings
    if name:
        items = [s for s in bundle.settings if s.name == name or s.target == name]
        if not items:
            known = sorted({s.name for s in bundle.settings} | {s.target for s in bundle.settings})
            hint = difflib.get_close_matches(name, known, n=1)
            raise UsageError(f"{name}: no such setting in {bundle.profile.environment}"
                             + (f"; did you mean '{hint[0]}'?" if hint else ""))
    if fmt == "json":
        click.echo(json.dumps([s.explain() for s in items], indent=2, sort_keys=True))
        return
    for s in items:
        click.echo(f"{s.name} = {s.text}")
        click.echo(f"  rule:   {s.rule}")
        if s.inputs:
            click.echo("  inputs: " + ", ".join(f"{k}={v}" for k, v in s.inputs.items()))


@main.command("diff")
@click.argument("env_a")
@click.argument("env_b")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text")
@click.pass_context
@handles_errors
def diff_command(ctx: click.Context, env_a: str, env_b: str, fmt: str) -> None:
    """Setting-level differences between two environments, grouped by target."""
    from .compare import diff_bundles, format_diff

    a, b = load_bundle(ctx, env_a), load_bundle(ctx, env_b)
    click.echo(format_diff(diff_bundles(a, b), a.profile.environment, b.profile.environment, fmt), nl=False)


@main.command("schema")
def schema_command() -> None:
    """Print the JSON Schema of the profile (for editors)."""
    from .profile import json_schema

    click.echo(json_schema(), nl=False)
