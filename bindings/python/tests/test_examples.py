"""The README's quickstart runs as written, also as three copies at once
against one server (each waits for its own task; nothing competes)."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import DEADLINE, REPO, Server

QUICKSTART = REPO / "examples" / "python" / "quickstart.py"


def check_output(stdout: str) -> None:
    assert "task: TaskStatus.PROCESSING" in stdout, stdout
    assert "task: TaskStatus.FINISH 100" in stdout, stdout
    assert "INVALID_ARGUMENT spec.transcode.definitions[0]" in stdout
    assert "rejected: INVALID_ARGUMENT webhook:" in stdout


def test_the_quickstart_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(QUICKSTART)],
        capture_output=True,
        text=True,
        timeout=2 * DEADLINE,
    )
    assert done.returncode == 0, done.stderr
    check_output(done.stdout)


def test_three_copies_of_the_quickstart_run_at_once_against_one_server(server: Server) -> None:
    env = os.environ | {"VODTASK_URL": server.grpc_url, "VODTASK_API_KEY": server.api_key}
    copies = [
        subprocess.Popen(
            [sys.executable, str(QUICKSTART)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(3)
    ]
    for copy in copies:
        stdout, stderr = copy.communicate(timeout=3 * DEADLINE)
        assert copy.returncode == 0, stderr
        check_output(stdout)
