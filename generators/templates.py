"""Jinja2 templates for the config files perfstack writes (postgresql.conf, pgbouncer.ini, redis.conf)."""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined


@cache
def _environment() -> Environment:
    return Environment(loader=PackageLoader("generators", "templates"), undefined=StrictUndefined,
                       keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True, autoescape=False)


def render_template(name: str, **context: Any) -> str:
    return _environment().get_template(name).render(**context)
