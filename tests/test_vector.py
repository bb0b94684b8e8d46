"""vector: rendered engine settings with an explain entry each, and `perfstack bench vector` on the real engines."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from generators import vector, vector_bench
from generators.errors import ProfileError
from generators.render import render

from .conftest import load, rendered_bundle, run_cli, variant

PGVECTOR = {"vector": {"engine": "pgvector", "dimensions": 16, "expected_vectors": 2000, "m": 12,
                       "ef_construction": 64, "metric": "l2", "roles": ["app", "worker"]}}


def test_chroma_collection_carries_the_profiles_hnsw_settings() -> None:
    bundle = rendered_bundle("prod")
    collection = json.loads(bundle.files[vector.CHROMA_FILE])
    hnsw = collection["configuration"]["hnsw"]
    assert hnsw == {"space": "cosine", "max_neighbors": 16, "ef_construction": 128, "ef_search": 40,
                    "batch_size": 100, "sync_threshold": 1000}
    assert collection["metadata"]["hnsw:construction_ef"] == 128 and collection["metadata"]["hnsw:M"] == 16
    assert "VECTOR_TOP_K=10\n" in bundle.files[vector.ENV_FILE]
    explained = {s.key for s in bundle.settings if s.target == "vector"}
    assert {"m", "ef_construction", "ef_search", "metric", "dimensions", "batch_size", "sync_threshold",
            "cache.size", "page_size"} <= explained


def test_pgvector_ddl_and_its_explain_entries() -> None:
    bundle = render(variant("prod", PGVECTOR))
    sql = bundle.files[vector.PGVECTOR_FILE]
    assert "CREATE EXTENSION IF NOT EXISTS vector;" in sql
    assert "USING hnsw (embedding vector_l2_ops) WITH (m = 12, ef_construction = 64);" in sql
    assert 'ALTER ROLE "worker" SET hnsw.ef_search = 40;' in sql
    # 2000 x (4 x 16 + 8 + 3 x 12 x 8) x 1.25 = 900 kB: rounded up to 64 MB.
    assert "SET maintenance_work_mem = '64MB';" in sql
    mwm = bundle.setting("vector.pgvector.maintenance_work_mem")
    assert mwm is not None and mwm.value == 64 * 1024 * 1024 and "64 MiB" in mwm.rule
    assert vector.CHROMA_FILE not in bundle.files


def test_maintenance_work_mem_is_capped_at_a_quarter_of_the_database_memory() -> None:
    profile = variant("prod", {"vector": {**PGVECTOR["vector"], "expected_vectors": "1B", "dimensions": 1536}})
    setting = vector.maintenance_work_mem(profile)
    assert setting.value == 16 * 1024 ** 3  # 64 GiB / 4
    assert "capped at 1/4 of hardware.postgres.memory" in setting.rule


def test_a_collection_name_that_is_no_identifier_is_refused() -> None:
    with pytest.raises(ProfileError) as info:
        variant("prod", {"vector": {"collection": "docs; DROP TABLE x"}})
    assert "vector.collection" in str(info.value)


def test_profiles_without_vector_render_no_vector_files() -> None:
    profile = load("prod").model_copy(update={"vector": None})
    assert not [path for path in render(profile).files if path.startswith("vector/")]


def _small(folder: Path, env: str = "dev") -> Path:
    path = folder / f"{env}.yaml"
    text = path.read_text().replace("dimensions: 384", "dimensions: 32").replace("expected_vectors: 20000",
                                                                                 "expected_vectors: 1500")
    path.write_text(text)
    return path


def test_bench_vector_on_chroma_measures_the_curve_draws_it_and_writes_back(profile_folder: Path,
                                                                           tmp_path: Path) -> None:
    path = _small(profile_folder)
    png = tmp_path / "curve.png"
    result = run_cli("--profiles-dir", profile_folder, "bench", "vector", "dev", "--queries", "40",
                     "--ef-search", "10,40,160", "--png", png, "--write", "--format", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    recalls = [p["recall"] for p in report["points"]]
    assert [p["ef_search"] for p in report["points"]] == [10, 40, 160]
    assert recalls == sorted(recalls) and recalls[-1] > recalls[0]  # a wider search finds more
    chosen = report["chosen"]
    assert chosen["recall"] >= 0.90 and chosen["ef_search"] == min(
        p["ef_search"] for p in report["points"] if p["meets"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Written back, with the file's comments kept; the profile now renders the measured value.
    text = path.read_text()
    assert re.search(rf"^  ef_search: {chosen['ef_search']}$", text, re.M)
    assert "# knowledge retrieval: Chroma, embedded in dev" in text
    assert load("dev", profile_folder).vector.ef_search == chosen["ef_search"]


def test_bench_vector_exits_1_when_no_setting_meets_the_target(profile_folder: Path) -> None:
    path = _small(profile_folder)
    path.write_text(path.read_text().replace("recall_target: 0.90", "recall_target: 1.0")
                    .replace("latency_p95: 100ms", "latency_p95: 1ms"))
    result = run_cli("--profiles-dir", profile_folder, "bench", "vector", "dev", "--queries", "20",
                     "--ef-search", "10")
    assert result.exit_code == 1
    assert "chosen: none" in result.stdout


def test_pgvector_runs_the_rendered_ddl_on_a_real_postgresql() -> None:
    pytest.importorskip("pgserver")
    profile = variant("prod", PGVECTOR)
    index = vector_bench.PgvectorIndex(profile, 12, 64)
    try:
        data, queries = vector_bench.data_set(1000, 16, 5, 2, "l2", 1)
        index.add(data)
        options = index.conn.execute(
            "SELECT reloptions FROM pg_class WHERE relname = 'documents_embedding_hnsw'").fetchone()
        assert options == (["m=12", "ef_construction=64"],)
        roles = index.conn.execute("SELECT r.rolname, s.setconfig FROM pg_db_role_setting s "
                                   "JOIN pg_roles r ON r.oid = s.setrole ORDER BY 1").fetchall()
        assert roles == [("app", ["hnsw.ef_search=40"]), ("worker", ["hnsw.ef_search=40"])]
        truth = vector_bench.exact_neighbours(data, queries, 10, "l2")
        index.set_ef_search(400)
        assert set(index.query(queries[0], 10)) == {int(i) for i in truth[0]}  # a wide search is exact here
    finally:
        index.close()


def test_chroma_server_settings_fit_one_insert_batch() -> None:
    from generators import units, vector
    from generators.render import render

    from .conftest import variant

    profile = variant("prod", {"vector": {"engine": "chroma", "batch_size": 5000, "dimensions": 1536}})
    env = render(profile).files[vector.CHROMA_SERVER_FILE]
    values = dict(line.split("=", 1) for line in env.splitlines() if line and not line.startswith("#"))
    # 5000 vectors x 1536 floats x 24 bytes as JSON x 2 = 351.6 MiB, rounded up to MiB: above the 40 MiB default.
    assert int(values["CHROMA_MAX_PAYLOAD_SIZE_BYTES"]) == -(-2 * 5000 * 1536 * 24 // units.MIB) * units.MIB
    assert values["CHROMA_ALLOW_RESET"] == "false" and values["CHROMA_PERSIST_PATH"] == "/data"
    small = variant("prod", {"vector": {"engine": "chroma", "batch_size": 10, "dimensions": 8}})
    assert vector.chroma_payload_bytes(small.vector) == 40 * units.MIB  # never below Chroma's default


def test_pgvector_extension_is_created_at_cloudnativepg_bootstrap() -> None:
    from generators.render import config_parts, render

    from .conftest import variant

    profile = variant("prod", {"vector": {"engine": "pgvector"}, "kubernetes": {"postgres": "cloudnativepg"}})
    cluster = next(o for o in render(profile).objects if o["kind"] == "Cluster")
    # After PgBouncer's auth_query lookup function (pgbouncer/auth_query.sql), the extension.
    sql = cluster["spec"]["bootstrap"]["initdb"]["postInitApplicationSQL"]
    assert sql[-1] == "CREATE EXTENSION IF NOT EXISTS vector"
    assert sql[:-1] == config_parts(profile).pgbouncer.derived["auth_sql"]
    chroma = variant("prod", {"vector": {"engine": "chroma"}, "kubernetes": {"postgres": "cloudnativepg"}})
    cluster = next(o for o in render(chroma).objects if o["kind"] == "Cluster")
    assert "CREATE EXTENSION IF NOT EXISTS vector" not in cluster["spec"]["bootstrap"]["initdb"]["postInitApplicationSQL"]
