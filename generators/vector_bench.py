"""`perfstack bench vector ENV`: tune the HNSW index by measurement on the real engine.

Builds the profile's index (vector.m, ef_construction, metric, batch_size, or a grid of m and
ef_construction) on a data set of the profile's dimensions, measures recall@k against exact search
(numpy, brute force) and single-client latency (p50, p95) and throughput across ef_search, and picks
the smallest ef_search whose recall meets vector.recall_target within vector.latency_p95.

Engines: Chroma embedded (`chromadb` from PyPI, in memory), or pgvector on a real PostgreSQL started on
loopback from the binaries of the `pgserver` wheel (PostgreSQL 16 with pgvector 0.6; Debian bookworm has
no pgvector package), running the rendered vector/pgvector.sql.

The data set: no embedding model loads offline here (Chroma's default model is downloaded at first use),
so it is a synthetic clustered set: `clusters` Gaussian clusters (one per 1,000 vectors by default) of
unit-norm centres with a spread of 1/sqrt(dimensions) per coordinate (the noise as large as the centre: a
query's neighbours are in its cluster, as with real text embeddings, but hard to tell apart in it); queries are fresh points from the same clusters. Seeded.

This module never imports click; the CLI formats the report and draws the PNG (`plot`).
"""

from __future__ import annotations

import math
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import PerfstackError
from .profile import Profile, Vector

Progress = Callable[[str], None]
DEFAULT_EF_SEARCH = (10, 20, 40, 80, 160, 320)
SPREAD = 1.0


class VectorBenchError(PerfstackError):
    """The vector benchmark could not run (an engine missing or failing)."""


@dataclass(frozen=True)
class Options:
    vectors: int | None = None  # default: min(expected_vectors, 20000)
    queries: int = 200
    ef_search: tuple[int, ...] = ()
    m: tuple[int, ...] = ()
    ef_construction: tuple[int, ...] = ()
    engine: str | None = None  # default vector.engine
    seed: int = 7
    clusters: int | None = None


@dataclass(frozen=True)
class Point:
    m: int
    ef_construction: int
    ef_search: int
    recall: float
    p50_ms: float
    p95_ms: float
    qps: float
    meets: bool


@dataclass
class Report:
    environment: str
    engine: str
    vectors: int
    dimensions: int
    queries: int
    k: int
    metric: str
    recall_target: float
    latency_p95_ms: float
    data_set: str
    build_seconds: dict[str, float] = field(default_factory=dict)  # "m/ef_construction" -> seconds
    points: list[Point] = field(default_factory=list)
    chosen: Point | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["schema"] = "perfstack.bench.vector/v1"
        return out


# ---------------------------------------------------------------- data
def data_set(n: int, dims: int, queries: int, clusters: int, metric: str, seed: int) -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dims))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    spread = SPREAD / math.sqrt(dims)

    def points(count: int) -> Any:
        labels = rng.integers(0, clusters, size=count)
        x = centres[labels] + rng.normal(scale=spread, size=(count, dims))
        if metric == "cosine":
            x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x.astype(np.float32)

    return points(n), points(queries)


def exact_neighbours(data: Any, queries: Any, k: int, metric: str) -> Any:
    import numpy as np

    if metric == "l2":
        scores = (queries ** 2).sum(1)[:, None] - 2 * queries @ data.T + (data ** 2).sum(1)[None, :]
    else:  # cosine (unit vectors) and inner product: the largest dot product is nearest
        scores = -(queries @ data.T)
    return np.argsort(scores, axis=1, kind="stable")[:, :k]


# ---------------------------------------------------------------- engines
class ChromaIndex:
    """A persistent Chroma collection in a temporary folder. Chroma (1.5) stores a modified ef_search at
    once but searches the loaded index with the old one until the collection is loaded again (measured:
    the recall does not move), so every set_ef_search reopens the client."""

    def __init__(self, vector: Vector, m: int, ef_construction: int) -> None:
        try:
            import chromadb
        except ImportError as exc:
            raise VectorBenchError("chromadb is not installed: pip install 'perfstack[vector]'") from exc
        self.chromadb = chromadb
        self.folder = Path(tempfile.mkdtemp(prefix="perfstack-chroma-"))
        self.client = chromadb.PersistentClient(str(self.folder))
        self.name = f"{vector.collection}-m{m}-ef{ef_construction}"
        self.collection = self.client.create_collection(
            self.name, embedding_function=None,
            configuration={"hnsw": {"space": vector.metric, "max_neighbors": m, "ef_construction": ef_construction,
                                    "batch_size": vector.batch_size, "sync_threshold": vector.sync_threshold}})
        self.batch = vector.batch_size

    def add(self, data: Any) -> None:
        # Chroma caps one add() at its max_batch_size; insert in the profile's batches within it.
        step = max(1, min(self.batch * 10, self.client.get_max_batch_size()))
        for start in range(0, len(data), step):
            chunk = data[start:start + step]
            self.collection.add(ids=[str(i) for i in range(start, start + len(chunk))], embeddings=chunk)

    def set_ef_search(self, ef: int) -> None:
        self.collection.modify(configuration={"hnsw": {"ef_search": ef}})
        self.client.clear_system_cache()
        self.client = self.chromadb.PersistentClient(str(self.folder))
        self.collection = self.client.get_collection(self.name, embedding_function=None)

    def query(self, vector: Any, k: int) -> list[int]:
        result = self.collection.query(query_embeddings=[vector], n_results=k, include=[])
        return [int(i) for i in result["ids"][0]]

    def close(self) -> None:
        self.client.clear_system_cache()
        shutil.rmtree(self.folder, ignore_errors=True)


def pgserver_bin_dir() -> Path:
    """The PostgreSQL + pgvector binaries of the pgserver wheel, where the server's user can run them
    (as root PostgreSQL runs as `postgres`, which cannot read a root-owned site-packages: a copy in /tmp)."""
    try:
        import pgserver
    except ImportError as exc:
        raise VectorBenchError("pgvector needs a PostgreSQL with the extension: pip install pgserver "
                               "(PostgreSQL 16 + pgvector); Debian bookworm has no pgvector package") from exc
    package = Path(pgserver.__file__).parent
    if os.geteuid() != 0:
        return package / "pginstall" / "bin"
    # The binaries find their libraries at $ORIGIN/../../../pgserver.libs: copy both, side by side.
    copy = Path(tempfile.gettempdir()) / f"perfstack-pgserver-{package.stat().st_mtime_ns}"
    if not (copy / "pgserver" / "pginstall" / "bin" / "postgres").exists():
        staging = Path(tempfile.mkdtemp(prefix="perfstack-pgserver-"))
        shutil.copytree(package / "pginstall", staging / "pgserver" / "pginstall", symlinks=True)
        shutil.copytree(package.parent / "pgserver.libs", staging / "pgserver.libs", symlinks=True)
        for path in [staging, *staging.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o555 if path.is_dir() else path.stat().st_mode | 0o444)
        try:
            staging.rename(copy)
        except OSError:  # another process copied it first
            shutil.rmtree(staging, ignore_errors=True)
    return copy / "pgserver" / "pginstall" / "bin"


class PgvectorIndex:
    def __init__(self, profile: Profile, m: int, ef_construction: int) -> None:
        from . import localservers
        from . import vector as vector_target

        assert profile.vector is not None
        tuned = profile.vector.model_copy(update={"m": m, "ef_construction": ef_construction})
        self.profile = profile.model_copy(update={"vector": tuned})
        self.vector = tuned
        self.ddl = vector_target.pgvector_sql(self.profile)
        self.server = localservers.start_postgres(bin_dir=pgserver_bin_dir())
        import psycopg

        self.conn = psycopg.connect(self.server.dsn(), autocommit=True)
        for role in tuned.roles:
            self.conn.execute(f'CREATE ROLE "{role}"')  # roles are Tokens: no quote in them

    def add(self, data: Any) -> None:
        table = self.vector.collection
        # The rendered DDL as it is, in two parts: the extension and table, then (after the data is in)
        # maintenance_work_mem, the parallel build, the HNSW index and ef_search per role.
        schema, build = self.ddl.split("SET maintenance_work_mem", 1)
        self.conn.execute(schema)
        with self.conn.cursor() as cur, cur.copy(f"COPY {table} (id, embedding) FROM STDIN") as copy:
            for i, row in enumerate(data):
                copy.write_row((i, "[" + ",".join(f"{x:.7g}" for x in row) + "]"))
        self.conn.execute("SET maintenance_work_mem" + build)

    def set_ef_search(self, ef: int) -> None:
        self.conn.execute(f"SET hnsw.ef_search = {int(ef)}")

    def query(self, vector: Any, k: int) -> list[int]:
        from .vector import PGVECTOR_OPS

        operator = {"vector_cosine_ops": "<=>", "vector_l2_ops": "<->", "vector_ip_ops": "<#>"}[
            PGVECTOR_OPS[self.vector.metric]]
        literal = "[" + ",".join(f"{x:.7g}" for x in vector) + "]"
        rows = self.conn.execute(
            f"SELECT id FROM {self.vector.collection} ORDER BY embedding {operator} %s::vector LIMIT %s",
            (literal, k)).fetchall()
        return [int(r[0]) for r in rows]

    def close(self) -> None:
        self.conn.close()
        self.server.cleanup()


# ---------------------------------------------------------------- the measurement
def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def choose(points: Sequence[Point], vector: Vector) -> Point | None:
    """The smallest ef_search meeting recall and latency, for the profile's own m and ef_construction
    when they were measured, else for the combination whose pick is fastest."""
    meeting = [p for p in points if p.meets]
    if not meeting:
        return None
    own = [p for p in meeting if (p.m, p.ef_construction) == (vector.m, vector.ef_construction)]
    pool = own or meeting
    best_per_combo: dict[tuple[int, int], Point] = {}
    for p in sorted(pool, key=lambda p: p.ef_search):
        best_per_combo.setdefault((p.m, p.ef_construction), p)
    return min(best_per_combo.values(), key=lambda p: (p.p95_ms, p.ef_search))


def run(profile: Profile, options: Options, progress: Progress = lambda _: None) -> Report:
    if profile.vector is None:
        raise VectorBenchError(f"profile {profile.environment} has no vector: section")
    v = profile.vector
    engine = options.engine or v.engine
    n = options.vectors or min(v.expected_vectors, 20_000)
    if n < v.k:
        raise VectorBenchError(f"--vectors {n} is below vector.k {v.k}")
    clusters = options.clusters or max(1, n // 1000)
    efs = sorted({max(ef, v.k) for ef in (options.ef_search or DEFAULT_EF_SEARCH)})
    ms, efcs = options.m or (v.m,), options.ef_construction or (v.ef_construction,)
    progress(f"data: {n} vectors + {options.queries} queries, {v.dimensions} dims, {clusters} clusters")
    data, queries = data_set(n, v.dimensions, options.queries, clusters, v.metric, options.seed)
    truth = exact_neighbours(data, queries, v.k, v.metric)
    slo_ms = v.latency_p95
    report = Report(profile.environment, engine, n, v.dimensions, options.queries, v.k, v.metric, v.recall_target,
                    slo_ms, f"synthetic: {clusters} Gaussian clusters, spread {SPREAD}/sqrt(dims), seed {options.seed}")
    for m in ms:
        for efc in efcs:
            progress(f"{engine}: building m={m} ef_construction={efc}")
            started = time.perf_counter()
            index = ChromaIndex(v, m, efc) if engine == "chroma" else PgvectorIndex(profile, m, efc)
            try:
                index.add(data)
                report.build_seconds[f"{m}/{efc}"] = round(time.perf_counter() - started, 3)
                for ef in efs:
                    index.set_ef_search(ef)
                    index.query(queries[0], v.k)  # warm the path once
                    latencies, hits = [], 0
                    began = time.perf_counter()
                    for q_index, vec in enumerate(queries):
                        t0 = time.perf_counter()
                        found = index.query(vec, v.k)
                        latencies.append((time.perf_counter() - t0) * 1000)
                        hits += len(set(found) & set(int(i) for i in truth[q_index]))
                    elapsed = time.perf_counter() - began
                    recall = hits / (len(queries) * v.k)
                    p95 = _percentile(latencies, 0.95)
                    point = Point(m, efc, ef, round(recall, 4), round(statistics.median(latencies), 3), round(p95, 3),
                                  round(len(queries) / elapsed, 1), recall >= v.recall_target and p95 <= slo_ms)
                    report.points.append(point)
                    progress(f"  ef_search={ef}: recall@{v.k} {recall:.3f}, p95 {p95:.2f} ms")
            finally:
                index.close()
    report.chosen = choose(report.points, v)
    return report


def format_report(report: Report) -> str:
    lines = [f"vector bench {report.environment}: {report.engine}, {report.vectors} vectors x {report.dimensions} "
             f"dims ({report.metric}), {report.queries} queries, k={report.k}",
             f"data: {report.data_set}",
             f"target: recall@{report.k} >= {report.recall_target:g} within p95 {report.latency_p95_ms:g} ms",
             "",
             f"{'m':>4} {'ef_c':>5} {'ef_search':>9} {'recall':>7} {'p50 ms':>8} {'p95 ms':>8} {'q/s':>8}  meets",
             ]
    for p in report.points:
        lines.append(f"{p.m:>4} {p.ef_construction:>5} {p.ef_search:>9} {p.recall:>7.3f} {p.p50_ms:>8.2f} "
                     f"{p.p95_ms:>8.2f} {p.qps:>8.1f}  {'yes' if p.meets else 'no'}")
    lines.append("")
    lines += [f"build m/ef_construction {combo}: {seconds:.2f} s" for combo, seconds in report.build_seconds.items()]
    c = report.chosen
    lines.append(f"chosen: m={c.m} ef_construction={c.ef_construction} ef_search={c.ef_search} "
                 f"(recall {c.recall:.3f}, p95 {c.p95_ms:.2f} ms)" if c else
                 "chosen: none: no ef_search meets the recall target within the latency SLO")
    return "\n".join(lines) + "\n"


def plot(report: Report, path: Path) -> None:
    """recall@k and p95 latency against ef_search, one line per (m, ef_construction), the targets dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    combos = sorted({(p.m, p.ef_construction) for p in report.points})
    for m, efc in combos:
        pts = [p for p in report.points if (p.m, p.ef_construction) == (m, efc)]
        label = f"m={m}, ef_construction={efc}"
        left.plot([p.ef_search for p in pts], [p.recall for p in pts], marker="o", label=label)
        right.plot([p.ef_search for p in pts], [p.p95_ms for p in pts], marker="o", label=label)
    left.axhline(report.recall_target, linestyle="--", color="red", label="recall target")
    right.axhline(report.latency_p95_ms, linestyle="--", color="red", label="latency SLO (p95)")
    for axis, title in ((left, f"recall@{report.k}"), (right, "p95 latency (ms)")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("ef_search")
        axis.set_title(title)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=7)
    if report.chosen:
        left.axvline(report.chosen.ef_search, color="green", alpha=0.5)
        right.axvline(report.chosen.ef_search, color="green", alpha=0.5)
    fig.suptitle(f"perfstack bench vector {report.environment}: {report.engine}, {report.vectors} x "
                 f"{report.dimensions} ({report.metric})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_back(profile_path: Path, chosen: Point, vector: Vector) -> None:
    """Set vector.ef_search (and m, ef_construction where the pick changed them) in the profile file,
    keeping its comments."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    data = yaml.load(profile_path.read_text())
    section = data.get("vector")
    if section is None:
        section = data["vector"] = CommentedMap()
    section["ef_search"] = chosen.ef_search
    if chosen.m != vector.m:
        section["m"] = chosen.m
    if chosen.ef_construction != vector.ef_construction:
        section["ef_construction"] = chosen.ef_construction
    with profile_path.open("w") as handle:
        yaml.dump(data, handle)
