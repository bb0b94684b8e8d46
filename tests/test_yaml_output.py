"""The YAML perfstack writes reads back as the data it was made from, under YAML 1.1 readers too."""

from __future__ import annotations

import yaml

from generators.k8s import dump_yaml


def test_shared_values_are_written_out_not_aliased() -> None:
    limits = {"cpu": "2", "memory": "4Gi"}
    text = dump_yaml({"resources": {"limits": limits, "requests": limits}})
    assert "&" not in text and "*" not in text
    assert yaml.safe_load(text) == {"resources": {"limits": limits, "requests": limits}}


def test_yaml11_lookalikes_stay_strings_and_config_files_are_blocks() -> None:
    data = {"huge_pages": "off", "jit": "on", "mode": "0777", "flag": "yes", "conf": "a = 1\nb = 2\n"}
    text = dump_yaml(data)
    assert "conf: |" in text
    assert yaml.safe_load(text) == data


def test_rendered_files_hold_no_aliases(rendered) -> None:  # type: ignore[no-untyped-def]
    for env in ("dev", "prod"):
        for path, text in rendered(env).files.items():
            if path.endswith(".yaml"):
                assert yaml.safe_load(text) is not None
                assert "&id0" not in text and "*id0" not in text, path
