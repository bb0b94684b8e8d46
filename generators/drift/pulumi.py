"""Pulumi drift: the Automation API's preview with refresh and expect-no-changes on a stack.

This sees what Pulumi manages (the objects `pulumi up` created) and that someone changed them. The
Automation API shells out to the `pulumi` CLI: without the CLI on PATH the target is reported as not
readable, with how to fix it, instead of failing. The project's Pulumi.yaml is only read (the stack is
selected, never created, and no project settings are saved), so its `stackConfigDir` stays as it is.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from .report import CHANGED, Difference, TargetReport, failed

TARGET = "pulumi"
NO_CHANGE_OPS = frozenset({"same", "read", "refresh", "discard", "discard-replaced", "read-discard",
                           "read-replacement", "remove-pending-replace"})
NO_CLI = ("the pulumi CLI is not on PATH; the Automation API needs it to refresh and preview the stack "
          "(install it: https://www.pulumi.com/docs/install/). The other targets were checked")


def find_project(start: Path) -> Path | None:
    """The folder holding Pulumi.yaml: `start` or one of its parents."""
    for folder in (start, *start.parents):
        if (folder / "Pulumi.yaml").exists():
            return folder
    return None


def change_of(event: Any) -> Difference | None:
    """A resource step that is not a no-op, as a difference keyed by the resource's URN."""
    pre = getattr(event, "resource_pre_event", None)
    if pre is None or pre.metadata is None:
        return None
    meta = pre.metadata
    op = getattr(meta.op, "value", str(meta.op))
    if op in NO_CHANGE_OPS:
        return None
    fields = ", ".join(meta.diffs or []) or None
    return Difference(meta.urn, CHANGED, "no change", op, note=f"fields: {fields}" if fields else None)


def _program(project: Path) -> Any:
    """The project's Pulumi program (infra/program.py), run with the project's folder as its root."""
    import sys

    if str(project) not in sys.path:
        sys.path.insert(0, str(project))
    from infra import program  # the Pulumi program itself, run inline
    return lambda: program.main(root=project)


def check(stack_name: str, project_dir: Path | None = None) -> TargetReport:
    endpoint = f"stack {stack_name}"
    if shutil.which("pulumi") is None:
        return failed(TARGET, endpoint, NO_CLI)
    project = find_project(project_dir or Path.cwd())
    if project is None:
        return failed(TARGET, endpoint, f"no Pulumi.yaml in {project_dir or Path.cwd()} or its parents")
    from pulumi import automation as auto

    diffs: list[Difference] = []

    def on_event(event: Any) -> None:
        change = change_of(event)
        if change is not None:
            diffs.append(change)

    try:
        # The program runs in this process (the Automation API's inline mode, on the project's own Pulumi.yaml
        # and stack files): no Python language host is needed beside the CLI.
        # (An inline program ignores select_stack's work_dir argument: the folder goes in the options.)
        stack = auto.select_stack(stack_name=stack_name, project_name="perfstack", program=_program(project),
                                  opts=auto.LocalWorkspaceOptions(work_dir=str(project)))
        stack.preview(refresh=True, expect_no_changes=True, diff=True, on_event=on_event, color="never")
    except auto.errors.CommandError as exc:
        if not diffs:  # expect_no_changes fails the command on changes; any other failure is an error
            return failed(TARGET, endpoint, f"pulumi preview failed: {str(exc).strip()[-2000:]}")
    except Exception as exc:  # noqa: BLE001 - reported; the other targets go on
        return failed(TARGET, endpoint, f"{type(exc).__name__}: {str(exc).strip()}")
    return TargetReport(TARGET, endpoint, checked=1, differences=diffs)
