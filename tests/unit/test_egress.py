"""Proxy selection as curl reads the environment, proxy URLs, TLS contexts, and the CONNECT
handshake against real sockets on loopback (a proxy answering 200, 407 or 502)."""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl

import pytest

from proxy.config.egress import (
    Proxy,
    bypassed,
    parse_proxy,
    proxy_from_env,
    tls_context,
)
from proxy.config.snapshot import TLSSettings
from proxy.engine.tunnel import ProxyFailed, open_tunnel


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "expected"),
    [
        ("api.openai.com", 443, "*", True),
        ("api.openai.com", 443, "openai.com", True),
        ("api.openai.com", 443, ".openai.com", True),
        ("openai.com", 443, ".openai.com", True),
        ("notopenai.com", 443, "openai.com", False),
        ("api.openai.com", 443, "anthropic.com, openai.com", True),
        ("api.openai.com", 443, "anthropic.com openai.com", True),
        ("API.OpenAI.com", 443, "openai.COM", True),
        ("api.openai.com", 443, "openai.com:8443", False),
        ("api.openai.com", 8443, "openai.com:8443", True),
        ("10.1.2.3", 443, "10.0.0.0/8", True),
        ("11.1.2.3", 443, "10.0.0.0/8", False),
        ("127.0.0.1", 80, "127.0.0.1", True),
        ("::1", 80, "::1", True),
        ("::1", 80, "[::1]:80", True),
        ("localhost", 80, "", False),
        ("localhost", 80, " , ", False),
    ],
)
def test_no_proxy_matching(host: str, port: int, no_proxy: str, expected: bool) -> None:
    assert bypassed(host, port, no_proxy) is expected


def test_proxy_from_env_by_scheme_lowercase_first_and_no_proxy() -> None:
    env = {"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:2", "HTTP_PROXY": "p:3"}
    assert proxy_from_env("https://api.openai.com/v1", env) == "http://lower:2"
    assert proxy_from_env("http://vendor.internal:8080", env) == "p:3"
    assert proxy_from_env("https://api.openai.com/v1", {**env, "NO_PROXY": "openai.com"}) is None
    assert proxy_from_env("https://api.openai.com/v1", {"no_proxy": "*", **env}) is None
    assert proxy_from_env("https://api.openai.com/v1", {"HTTP_PROXY": "p:3"}) is None
    assert proxy_from_env("https://api.openai.com/v1", {"HTTPS_PROXY": ""}) is None


def test_parse_proxy_credentials_become_basic_auth_and_stay_out_of_names() -> None:
    proxy = parse_proxy("http://us%40er:p%3Ass@proxy.corp:3128")
    assert (proxy.host, proxy.port, proxy.shown) == ("proxy.corp", 3128, "http://proxy.corp:3128")
    assert proxy.authorization == "Basic " + base64.b64encode(b"us@er:p:ss").decode()
    assert "p:ss" not in repr(proxy) and "p%3Ass" not in repr(proxy)
    assert parse_proxy("proxy.corp:8080").shown == "http://proxy.corp:8080"
    assert parse_proxy("http://proxy.corp").port == 80
    assert parse_proxy("http://[::1]:3128").shown == "http://[::1]:3128"
    for bad in ("socks5://u:secret@h:1080", "https://h:443", "http://:3128", "http://h:99999"):
        with pytest.raises(ValueError) as caught:
            parse_proxy(bad)
        assert "secret" not in str(caught.value)


def test_tls_context_follows_the_settings(tmp_path) -> None:
    import trustme

    authority = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    assert tls_context(TLSSettings()) is tls_context(TLSSettings())  # the shared default
    private = tls_context(TLSSettings(ca_file=str(ca_file)))
    assert private.verify_mode == ssl.CERT_REQUIRED and private.check_hostname
    assert len(private.get_ca_certs()) == 1  # the private CA only, not the system's
    lax = tls_context(TLSSettings(verify=False))
    assert lax.verify_mode == ssl.CERT_NONE and not lax.check_hostname
    with pytest.raises(FileNotFoundError):
        tls_context(TLSSettings(client_cert_file=str(tmp_path / "nope.pem")))


async def _fake_proxy(answer: bytes) -> tuple[asyncio.Server, list[bytes]]:
    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(answer)
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0), heads


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"HTTP/1.1 200 Connection established\r\n\r\n", None),
        (b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n", "HTTP 407 Proxy Auth"),
        (b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n", "HTTP 502 Bad Gateway"),
        (b"", "closed the connection during CONNECT"),
    ],
)
def test_connect_handshake(answer: bytes, message: str | None) -> None:
    async def main() -> list[bytes]:
        server, heads = await _fake_proxy(answer)
        port = server.sockets[0].getsockname()[1]
        proxy = Proxy("127.0.0.1", port, f"http://127.0.0.1:{port}", "Basic dTpwdw==")
        loop = asyncio.get_running_loop()
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setblocking(False)
        try:
            if message is None:
                await open_tunnel(loop, sock, proxy, "api.example.com", 443)
            else:
                with pytest.raises(ProxyFailed, match=message) as caught:
                    await open_tunnel(loop, sock, proxy, "api.example.com", 443)
                assert "dTpwdw" not in str(caught.value)
                assert f"http://127.0.0.1:{port}" in str(caught.value)
        finally:
            sock.close()
            server.close()
            await server.wait_closed()
        return heads

    (head,) = asyncio.run(main())
    assert head.startswith(b"CONNECT api.example.com:443 HTTP/1.1\r\n")
    assert b"host: api.example.com:443\r\n" in head
    assert b"proxy-authorization: Basic dTpwdw==\r\n" in head
