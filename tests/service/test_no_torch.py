from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
import c2f.service.main
from c2f.service.main import create_app
from c2f.service.settings import Settings
create_app(Settings(artifact_root="/nonexistent-c2f-root", reload_seconds=0))
import c2f, c2f.contract.artifact, c2f.contract.methods, c2f.contract.jobspec
import c2f.service.scoring, c2f.service.registry, c2f.service.jobs
layers = ("c2f.trainer", "c2f.jobs", "c2f.cli")
bad = sorted(m for m in sys.modules if m == "torch" or m.startswith(("torch.", *layers)))
print(",".join(bad))
"""


def test_service_does_not_import_torch_or_trainer() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "", f"service imported: {out.stdout.strip()}"
