"""The few exception types perfstack raises. Each names the file, line, key and the fix."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Problem:
    """One thing wrong with a profile, located in its source."""

    message: str
    file: str = "<profile>"
    line: int | None = None
    column: int | None = None
    key: str = ""

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        shown = self.key if self.key.isprintable() else repr(self.key)[1:-1]  # a newline in a key stays visible
        key = f" {shown}:" if self.key else ""
        return f"{where}:{key} {self.message}"


class PerfstackError(Exception):
    """Base of every error the CLI turns into exit code 2."""


@dataclass
class ProfileError(PerfstackError):
    """A profile that cannot be loaded or does not validate."""

    problems: list[Problem] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


class CheckError(ProfileError):
    """A profile whose components cannot work together (cross-component checks)."""


class UsageError(PerfstackError):
    """A command used wrongly (unknown environment, unknown setting name)."""
