"""The package against a server started with --tls-cert/--tls-key: https://
with the test CA works; without it, the unknown issuer is named."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import pytest

import vodtask
from conftest import DEADLINE, Server, start_server, stop_server


@dataclass
class Certs:
    ca: Path
    cert: Path
    key: Path


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=DEADLINE)


def make_certs(directory: Path) -> Certs:
    """A test CA (EC P-256) and a server certificate it signed for
    localhost and 127.0.0.1, as PEM files (the openssl CLI)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl(
        "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=vodtask test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    openssl(
        "req", "-new", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost",
        cwd=directory,
    )  # fmt: skip
    (directory / "server.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=critical,CA:FALSE\n"
    )
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-set_serial", "0x" + secrets.token_hex(8), "-days", "2", "-extfile", "server.ext",
        "-out", "server.pem",
        cwd=directory,
    )  # fmt: skip
    return Certs(directory / "ca.pem", directory / "server.pem", directory / "server.key")


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    return make_certs(tmp_path)


@pytest.fixture
def tls_server(tmp_path: Path, certs: Certs) -> Iterator[Server]:
    proc, srv = start_server(
        tmp_path / "data", ["--workers", "0", "--tls-cert", str(certs.cert), "--tls-key", str(certs.key)]
    )
    yield srv
    stop_server(proc)


def https(server: Server) -> str:
    return server.grpc_url.replace("http://", "https://", 1)


async def test_https_with_the_ca_as_a_path_or_pem(tls_server: Server, certs: Certs) -> None:
    forms: list[Union[str, os.PathLike[str], bytes]] = [
        str(certs.ca),
        certs.ca,
        certs.ca.read_bytes(),
        certs.ca.read_text(),
    ]
    for ca_cert in forms:
        async with await vodtask.connect(https(tls_server), api_key=tls_server.api_key, ca_cert=ca_cert) as client:
            overview = await client.task_overview()
            assert overview.total == 0
    # By name as well as by address: the certificate carries both.
    port = tls_server.grpc_url.rsplit(":", 1)[1]
    async with await vodtask.connect(
        f"https://localhost:{port}", api_key=tls_server.api_key, ca_cert=certs.ca
    ) as client:
        uploaded = await client.upload_bytes(b"not media", "note.txt")
        # File URLs are https:// too.
        assert uploaded.file_url.startswith(f"https://{tls_server.http_addr}/"), uploaded.file_url


async def test_without_the_ca_the_unknown_issuer_is_named(tls_server: Server) -> None:
    with pytest.raises(vodtask.Unavailable) as raised:
        await vodtask.connect(https(tls_server), api_key=tls_server.api_key)
    assert raised.value.code == "UNAVAILABLE"
    message = str(raised.value)
    assert "TLS handshake with" in message and "UnknownIssuer" in message, message


async def test_connect_errors_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(vodtask.InvalidArgument) as bad_url:
        await vodtask.connect("localhost:50051", api_key="k")
    assert str(bad_url.value) == 'url: must start with http:// or https://, got "localhost:50051"'
    with pytest.raises(vodtask.InvalidArgument) as missing:
        await vodtask.connect("https://127.0.0.1:1", api_key="k", ca_cert=tmp_path / "nope.pem")
    assert str(missing.value).startswith("ca_cert: cannot read"), missing.value
