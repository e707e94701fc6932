"""The README's quickstart runs as written."""

from __future__ import annotations

import subprocess
import sys

from conftest import DEADLINE, REPO


def test_the_quickstart_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "python" / "quickstart.py")],
        capture_output=True,
        text=True,
        timeout=2 * DEADLINE,
    )
    assert done.returncode == 0, done.stderr
    assert "event: TranscodeComplete" in done.stdout
    assert "INVALID_ARGUMENT spec.transcode.definitions[0]" in done.stdout
    assert "rejected: INVALID_ARGUMENT webhook:" in done.stdout
