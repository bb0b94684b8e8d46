"""Vector search: the HNSW index settings for Chroma or pgvector, and the app's retrieval settings.

- `vector/chroma-collection.json` (engine chroma): the collection's `configuration.hnsw` (Chroma 1.x:
  space, max_neighbors, ef_construction, ef_search, batch_size, sync_threshold) and the same values as
  the `hnsw:*` collection metadata that Chroma 0.x clients pass;
- `vector/pgvector.sql` (engine pgvector): the extension, the table, the HNSW index with `m` and
  `ef_construction` built under a sized maintenance_work_mem, and `hnsw.ef_search` per role;
- `vector/vector.env`: what the application reads (k, page size, cache of frequent query vectors).

`ef_search` is what `perfstack bench vector ENV` measures (generators/vector_bench.py) and can write back
to the profile; until then it is max(k, 40), pgvector's default (a search returns at most ef_search rows).
"""

from __future__ import annotations

import json
from typing import Any

from . import units
from .bundle import Part, Setting
from .profile import Profile, Vector

TARGET = "vector"
CHROMA_FILE = "vector/chroma-collection.json"
PGVECTOR_FILE = "vector/pgvector.sql"
ENV_FILE = "vector/vector.env"
CHROMA_SERVER_FILE = "vector/chroma-server.env"
CHROMA_PORT = 8000
CHROMA_PERSIST_PATH = "/data"  # the volume the Chroma server's pod mounts
CHROMA_DEFAULT_PAYLOAD = 40 * units.MIB  # CHROMA_MAX_PAYLOAD_SIZE_BYTES's default
JSON_BYTES_PER_FLOAT = 24  # a float32 written as JSON text ("-0.012345678901234567,"), the worst case
DEFAULT_EF_SEARCH = 40  # pgvector's hnsw.ef_search default
PGVECTOR_OPS = {"cosine": "vector_cosine_ops", "l2": "vector_l2_ops", "ip": "vector_ip_ops"}
# pgvector's HNSW build keeps the graph in maintenance_work_mem: each vector's elements (4 bytes a
# dimension, 8 of header) and its neighbour lists (2 x m at layer 0, m above it, 6-byte item pointers
# plus 2 of count) with a quarter more for the upper layers and allocator overhead.
ROUND_MAINTENANCE = 64 * units.MIB
MAINTENANCE_SHARE_MAX = (1, 4)  # of hardware.postgres.memory: the build must not starve shared_buffers


def _setting(key: str, value: Any, text: str, rule: str, **inputs: Any) -> Setting:
    return Setting(TARGET, key, value, text, rule, inputs)


def ef_search(vector: Vector) -> int:
    return vector.ef_search if vector.ef_search is not None else max(vector.k, DEFAULT_EF_SEARCH)


def graph_bytes(vector: Vector) -> int:
    per_vector = 4 * vector.dimensions + 8 + 3 * vector.m * 8
    return vector.expected_vectors * per_vector * 5 // 4


def maintenance_work_mem(profile: Profile) -> Setting:
    assert profile.vector is not None
    v = profile.vector
    wanted = -(-graph_bytes(v) // ROUND_MAINTENANCE) * ROUND_MAINTENANCE
    num, den = MAINTENANCE_SHARE_MAX
    cap = profile.hardware.postgres.memory * num // den // units.MIB * units.MIB
    size = min(wanted, cap)
    rule = ("expected_vectors x (4 x dimensions + 8 + 3 x m x 8 bytes) x 1.25, rounded up to 64 MiB"
            + (f", capped at {num}/{den} of hardware.postgres.memory" if wanted > cap else ""))
    return _setting("pgvector.maintenance_work_mem", size, f"{size // units.MIB}MB", rule,
                    expected_vectors=v.expected_vectors, dimensions=v.dimensions, m=v.m,
                    graph=units.format_size_human(graph_bytes(v)))


def settings(profile: Profile) -> list[Setting]:
    assert profile.vector is not None
    v = profile.vector
    ef = ef_search(v)
    items = [
        _setting("engine", v.engine, v.engine, "given by vector.engine"),
        _setting("collection", v.collection, v.collection, "given by vector.collection"),
        _setting("dimensions", v.dimensions, str(v.dimensions), "given by vector.dimensions"),
        _setting("metric", v.metric, v.metric, "given by vector.metric"),
        _setting("m", v.m, str(v.m), "given by vector.m (HNSW neighbours per node; Chroma: max_neighbors)"),
        _setting("ef_construction", v.ef_construction, str(v.ef_construction), "given by vector.ef_construction"),
        _setting("ef_search", ef, str(ef),
                 "given by vector.ef_search (measured by `perfstack bench vector`)" if v.ef_search is not None
                 else f"vector.ef_search not measured yet: max(k, {DEFAULT_EF_SEARCH}) (pgvector's default; a "
                      "search returns at most ef_search rows)", k=v.k, recall_target=v.recall_target,
                 latency_p95=units.format_duration(v.latency_p95)),
        _setting("batch_size", v.batch_size, str(v.batch_size), "given by vector.batch_size (vectors per insert)"),
        _setting("page_size", v.page_size, str(v.page_size), "given by vector.page_size"),
        _setting("cache.size", v.cache.size, str(v.cache.size), "given by vector.cache.size"),
        _setting("cache.ttl", v.cache.ttl, f"{v.cache.ttl // 1000}s", "given by vector.cache.ttl, in seconds"),
    ]
    if v.engine == "chroma":
        items.append(_setting("sync_threshold", v.sync_threshold, str(v.sync_threshold),
                              "given by vector.sync_threshold (Chroma persists the index every this many vectors)"))
        items += chroma_server_settings(profile)
    else:
        items += [maintenance_work_mem(profile),
                  _setting("pgvector.extension", "vector", "CREATE EXTENSION vector",
                           "pgvector needs no shared_preload_libraries: the DDL creates the extension")]
    return items


def chroma_payload_bytes(vector: Vector) -> int:
    """The request size one insert batch needs: batch_size x dimensions floats as JSON, twice for ids, documents
    and metadata, rounded up to MiB; never below Chroma's own 40 MiB default."""
    needed = 2 * vector.batch_size * vector.dimensions * JSON_BYTES_PER_FLOAT
    return max(CHROMA_DEFAULT_PAYLOAD, -(-needed // units.MIB) * units.MIB)


def chroma_server_settings(profile: Profile) -> list[Setting]:
    """The self-hosted Chroma server's environment (docs.trychroma.com/reference/server-env-vars)."""
    assert profile.vector is not None
    v = profile.vector
    payload = chroma_payload_bytes(v)
    return [
        _setting("CHROMA_PERSIST_PATH", CHROMA_PERSIST_PATH, CHROMA_PERSIST_PATH, "the data volume of the Chroma pod"),
        _setting("CHROMA_LISTEN_ADDRESS", "0.0.0.0", "0.0.0.0", "listen on the pod's address for its Service"),
        _setting("CHROMA_PORT", CHROMA_PORT, str(CHROMA_PORT), "Chroma's default port"),
        _setting("CHROMA_ALLOW_RESET", False, "false", "a reset deletes every collection: never in a deployed server"),
        _setting("CHROMA_MAX_PAYLOAD_SIZE_BYTES", payload, str(payload),
                 f"2 x batch_size x dimensions x {JSON_BYTES_PER_FLOAT} bytes per float as JSON, rounded up to MiB, "
                 "at least Chroma's 40 MiB default: one insert batch must fit one request",
                 batch_size=v.batch_size, dimensions=v.dimensions),
    ]


def chroma_server_env(profile: Profile) -> str:
    header = f"# Chroma server settings rendered by perfstack for environment {profile.environment}.\n"
    return header + "".join(f"{s.key}={s.text}\n" for s in chroma_server_settings(profile))


def chroma_collection(profile: Profile) -> dict[str, Any]:
    assert profile.vector is not None
    v = profile.vector
    ef = ef_search(v)
    return {
        "name": v.collection,
        "configuration": {"hnsw": {"space": v.metric, "max_neighbors": v.m, "ef_construction": v.ef_construction,
                                   "ef_search": ef, "batch_size": v.batch_size, "sync_threshold": v.sync_threshold}},
        "metadata": {"hnsw:space": v.metric, "hnsw:M": v.m, "hnsw:construction_ef": v.ef_construction,
                     "hnsw:search_ef": ef, "hnsw:batch_size": v.batch_size, "hnsw:sync_threshold": v.sync_threshold},
    }


def pgvector_sql(profile: Profile) -> str:
    """The DDL; every name is an Identifier or Token (validated), every number an int."""
    assert profile.vector is not None
    v = profile.vector
    mwm = maintenance_work_mem(profile)
    workers = max(0, (profile.hardware.postgres.cpus or 2) // 2 - 1)
    lines = [
        f"-- pgvector index for {v.collection}, rendered by perfstack for environment {profile.environment}.",
        "-- Do not edit: change the profile. Run as the table's owner.",
        "CREATE EXTENSION IF NOT EXISTS vector;",
        f"CREATE TABLE IF NOT EXISTS {v.collection} (id bigint PRIMARY KEY, embedding vector({v.dimensions}) NOT NULL);",
        f"-- {mwm.rule}: the graph ({mwm.inputs['graph']}) is built in memory",
        f"SET maintenance_work_mem = '{mwm.text}';",
        f"SET max_parallel_maintenance_workers = {workers};  -- half the cores, less the leader",
        f"CREATE INDEX IF NOT EXISTS {v.collection}_embedding_hnsw ON {v.collection}",
        f"    USING hnsw (embedding {PGVECTOR_OPS[v.metric]}) WITH (m = {v.m}, ef_construction = {v.ef_construction});",
        "RESET maintenance_work_mem;",
        "RESET max_parallel_maintenance_workers;",
    ]
    lines += [f'ALTER ROLE "{role}" SET hnsw.ef_search = {ef_search(v)};' for role in v.roles]
    return "\n".join(lines) + "\n"


def env_file(profile: Profile) -> str:
    assert profile.vector is not None
    v = profile.vector
    values = {"VECTOR_ENGINE": v.engine, "VECTOR_COLLECTION": v.collection, "VECTOR_DIMENSIONS": v.dimensions,
              "VECTOR_METRIC": v.metric, "VECTOR_TOP_K": v.k, "VECTOR_EF_SEARCH": ef_search(v),
              "VECTOR_BATCH_SIZE": v.batch_size, "VECTOR_PAGE_SIZE": v.page_size,
              "VECTOR_CACHE_SIZE": v.cache.size, "VECTOR_CACHE_TTL_SECONDS": v.cache.ttl // 1000}
    header = f"# Vector search settings rendered by perfstack for environment {profile.environment}.\n"
    return header + "".join(f"{key}={value}\n" for key, value in values.items())


def render(profile: Profile) -> Part:
    if profile.vector is None:
        return Part()
    files = {ENV_FILE: env_file(profile)}
    if profile.vector.engine == "chroma":
        files[CHROMA_FILE] = json.dumps(chroma_collection(profile), indent=2, sort_keys=True) + "\n"
        files[CHROMA_SERVER_FILE] = chroma_server_env(profile)
    else:
        files[PGVECTOR_FILE] = pgvector_sql(profile)
    return Part(settings=settings(profile), files=files)
