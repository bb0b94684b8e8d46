"""Entry point Pulumi runs (`main: infra/` in Pulumi.yaml): `pulumi up -s dev` deploys profiles/dev.yaml."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from infra.program import main  # noqa: E402

main()
