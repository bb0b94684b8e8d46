"""The application's settings as a ConfigMap its own Deployment loads (envFrom), with a checksum annotation."""

from __future__ import annotations

from typing import Any

from ..app import config_map_name
from ..bundle import Part
from ..k8s import CHECKSUM_ANNOTATION, checksum_of, config_map
from ..profile import Profile


def objects(profile: Profile, part: Part) -> list[dict[str, Any]]:
    data = {s.key: s.text for s in part.settings}
    cm = config_map(profile, config_map_name(profile), profile.app.deployment, data)
    cm["metadata"]["annotations"] = {CHECKSUM_ANNOTATION: checksum_of(data)}
    return [cm]
