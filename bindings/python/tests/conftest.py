"""Fixtures: the real `vodtask` binary on its own data dir and free ports,
test clips made with ffmpeg, and waiting with deadlines."""

from __future__ import annotations

import os
import queue
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
# How long any single condition may take before a test fails.
DEADLINE = 60.0


def vodtask_bin() -> Path:
    """`$VODTASK_BIN`, or the binary `cargo build` put in target/debug."""
    explicit = os.environ.get("VODTASK_BIN")
    path = Path(explicit) if explicit else REPO / "target" / "debug" / "vodtask"
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `cargo build --workspace` first")
    return path


@dataclass
class Server:
    grpc_url: str
    http_addr: str
    data_dir: Path
    api_key: str


def start_server(data_dir: Path, extra: list[str]) -> tuple[subprocess.Popen[bytes], Server]:
    log = open(data_dir.with_suffix(".log"), "ab")
    proc = subprocess.Popen(
        [
            str(vodtask_bin()),
            "serve",
            "--data-dir",
            str(data_dir),
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            *extra,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log,
    )
    log.close()
    lines: queue.Queue[bytes] = queue.Queue()
    out = proc.stdout
    assert out is not None
    threading.Thread(target=lambda: lines.put(out.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=DEADLINE).decode()
    except queue.Empty:
        proc.kill()
        pytest.fail("vodtask did not print its addresses in time")
    fields = dict(w.split("=", 1) for w in line.split() if "=" in w)
    if "grpc" not in fields:
        proc.kill()
        pytest.fail(f"unexpected first line {line!r}; see {data_dir.with_suffix('.log')}")
    key = (data_dir / "default.key").read_text().strip()
    return proc, Server(f"http://{fields['grpc']}", fields["http"], data_dir, key)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    proc, srv = start_server(tmp_path / "data", [])
    yield srv
    stop_server(proc)


@pytest.fixture
def push_server(tmp_path: Path) -> Iterator[Server]:
    """A server allowed to send callbacks to loopback addresses."""
    proc, srv = start_server(tmp_path / "data", ["--allow-outbound-cidr", "127.0.0.0/8"])
    yield srv
    stop_server(proc)


def make_clip(directory: Path, name: str, seconds: int = 2, width: int = 320, height: int = 240) -> Path:
    """A test clip with video and audio, like tests/src/lib.rs make_clip."""
    path = directory / name
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc=duration={seconds}:size={width}x{height}:rate=25",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:duration={seconds}",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
            str(path),
        ],
        check=True,
        timeout=DEADLINE,
    )
    return path


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return make_clip(tmp_path, "in.mp4")
