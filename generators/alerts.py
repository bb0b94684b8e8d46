"""Placeholder: the alerts generator arrives with its issue. Renders nothing yet."""

from __future__ import annotations

from .bundle import Part
from .profile import Profile


def render(profile: Profile) -> Part:
    return Part()
