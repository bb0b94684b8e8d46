"""Time `perfstack diff prod --base main` (base rendered by its own code in a subprocess) on a throwaway repo.

    python3 benchmarks/review_bench.py [ROUNDS]

Prints the median wall time of the whole command and of the base's export alone.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    from generators.review import render_revision

    with tempfile.TemporaryDirectory(prefix="perfstack-review-bench-") as tmp:
        root = Path(tmp)
        for name in ("generators", "profiles"):
            shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        git = ["git", "-C", str(root), "-c", "user.email=b@example.com", "-c", "user.name=b"]
        subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
        subprocess.run([*git, "add", "."], check=True)
        subprocess.run([*git, "commit", "-qm", "base"], check=True)
        prod = root / "profiles" / "prod.yaml"
        prod.write_text(prod.read_text().replace("db_pool: {size: 20,", "db_pool: {size: 30,"))
        command = [sys.executable, "-c", "import sys; from generators.cli import main; main()",
                   "--profiles-dir", str(root / "profiles"), "diff", "prod", "--base", "main", "--format", "markdown"]
        whole, base = [], []
        for _ in range(rounds):
            start = time.perf_counter()
            done = subprocess.run(command, cwd=REPO, capture_output=True)
            whole.append(time.perf_counter() - start)
            assert done.returncode == 1, done.stderr
            start = time.perf_counter()
            render_revision("prod", root / "profiles", "main")
            base.append(time.perf_counter() - start)
    print(f"perfstack diff prod --base main (whole command), median of {rounds}: {statistics.median(whole):.2f} s")
    print(f"  of which the base revision's export (git archive + subprocess render): {statistics.median(base):.2f} s")


if __name__ == "__main__":
    main()
