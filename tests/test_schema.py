"""The JSON Schema is an editor's guide: every property described (with its unit), every default a valid input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from generators.loader import Location, Source
from generators.profile import json_schema
from generators.validation import profile_from_source

from .conftest import PROFILES

SCHEMA = json.loads(json_schema())
DEFS = SCHEMA["$defs"]


def properties() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, definition in [("Profile", SCHEMA), *DEFS.items()]:
        for field, prop in (definition.get("properties") or {}).items():
            yield f"{name}.{field}", prop


def test_every_property_has_a_description() -> None:
    missing = [name for name, prop in properties() if not prop.get("description")]
    assert missing == []
    assert len(list(properties())) > 150


@pytest.mark.parametrize("name, prop", [(n, p) for n, p in properties() if "default" in p], ids=lambda x: str(x)[:60])
def test_every_default_is_a_valid_input(name: str, prop: dict[str, Any]) -> None:
    node = {k: v for k, v in prop.items() if k != "default"}
    jsonschema.validate(prop["default"], {**node, "$defs": DEFS})


def test_defaults_are_in_the_profiles_own_syntax() -> None:
    app = SCHEMA["properties"]["app"]["default"]
    assert app["db_pool"]["timeout"] == "30s" and app["http"]["timeout"] == "1m"
    assert app["requests"]["memory"] == "512MiB"
    assert SCHEMA["properties"]["slo"]["default"]["memory_max"] == "4GiB"


def test_the_section_defaults_load_as_a_profile() -> None:
    # The defaults an editor would fill in, as a profile, give the model's own defaults back.
    data = {key: prop["default"] for key, prop in SCHEMA["properties"].items()
            if isinstance(prop.get("default"), dict)}
    data.update({"environment": "x", "namespace": "x",
                 "hardware": {"postgres": {"memory": "4GiB"}, "redis": {"memory": "1GiB"}}})
    written = {(key,): Location("x.yaml", 1, 1) for key in ("environment", "namespace")}
    profile = profile_from_source(Source(data=data, locations=written, files=["x.yaml"]), "x")
    assert profile.app.db_pool.timeout == 30_000 and profile.autoscaling.api.scale_down_stabilization == 300_000


def test_the_committed_schema_is_current() -> None:
    assert (PROFILES / "profile.schema.json").read_text() == json_schema()
