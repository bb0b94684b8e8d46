"""Production lint run by `validate`: settings that are legal but unsafe. Issue 8 fills it in."""

from __future__ import annotations

from .loader import Source
from .profile import Profile


def lint(profile: Profile, source: Source | None = None) -> None:
    """Raise ProfileError for unsafe settings in a profile (none are checked yet)."""
