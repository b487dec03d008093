"""README's reproduction-status table is generated from the committed claims files, never
typed by hand: it must equal what ``scripts/readme_status.py`` writes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_status_table_matches_the_claims_files():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "readme_status.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
