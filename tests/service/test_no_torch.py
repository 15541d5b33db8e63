from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
import service.main
from service.main import create_app
from service.settings import Settings
create_app(Settings(artifact_root="/nonexistent-c2f-root", reload_seconds=0))
import contract.artifact, contract.methods, contract.jobspec, service.scoring, service.registry, service.jobs
bad = sorted(m for m in sys.modules if m == "torch" or m.startswith(("torch.", "trainer", "jobs", "cli")))
print(",".join(bad))
"""


def test_service_does_not_import_torch_or_trainer() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "", f"service imported: {out.stdout.strip()}"
