"""Egress as production networks need it (issue 11, part 4), with real parts on loopback.

A real forward proxy (tinyproxy) in front of an HTTPS fake vendor whose certificate comes
from a private CA (trustme): HTTPS_PROXY/HTTP_PROXY/NO_PROXY read at load like curl, CONNECT
tunnels with TLS to the vendor inside (SNI and verification against its name), absolute-form
requests for http upstreams, proxy credentials from the URL (never logged or echoed), the
per-provider ``proxy_url`` and ``tls`` keys, mutual TLS, and proxy failures as retried
``http_error``s that name the proxy.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
import trustme

from proxy.config.build import load_snapshot
from proxy.demo import shipped_models
from proxy.sim.app import Sim
from proxy.sim.app import create_app as create_sim_app
from proxy.sim.runner import BackgroundServer, free_port
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY, gateway_config
from tests.forward_proxy import ForwardProxy
from tests.http import get

HELLO = [{"role": "user", "content": "hello"}]
PASSWORD = "pr0xy-CANARY-secret"
RETRIES = {"retry": {"max_retries": 1, "initial_backoff_ms": 1, "max_backoff_ms": 2}}


@dataclass
class TLSVendor:
    """The fake vendor over HTTPS at ``https://localhost:<port>``, its CA's PEM file, and the
    server names (SNI) its clients asked for."""

    sim: Sim
    server: BackgroundServer
    ca_file: Path
    names: list[str | None]
    authority: trustme.CA

    @property
    def base_url(self) -> str:
        return f"https://localhost:{self.server.port}/v1"

    @property
    def authority_name(self) -> str:
        return f"localhost:{self.server.port}"


def _tls_vendor(tmp_path: Path, client_ca: trustme.CA | None = None) -> Iterator[TLSVendor]:
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    names: list[str | None] = []
    context.sni_callback = lambda _sock, name, _ctx: names.append(name)
    if client_ca is not None:  # mutual TLS: no client certificate, no handshake
        context.verify_mode = ssl.CERT_REQUIRED
        client_ca.configure_trust(context)
    ca_file = tmp_path / f"vendor-ca-{id(authority)}.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    sim = Sim(
        openai_key=OPENAI_KEY,
        anthropic_key=ANTHROPIC_KEY,
        validate=True,
        extra_models=shipped_models(),
    )
    with BackgroundServer(lambda: create_sim_app(sim), ssl_context=context) as server:
        yield TLSVendor(sim, server, ca_file, names, authority)
    assert not [r for r in sim.received if r.schema_errors]


@pytest.fixture
def vendor(tmp_path: Path) -> Iterator[TLSVendor]:
    yield from _tls_vendor(tmp_path)


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    with ForwardProxy() as running:
        yield running


@pytest.fixture
def auth_proxy() -> Iterator[ForwardProxy]:
    with ForwardProxy(user="gateway", password=PASSWORD) as running:
        yield running


def openai_via(vendor: TLSVendor, **provider: Any) -> dict[str, Any]:
    """Overrides: the openai provider at the HTTPS vendor, trusting its private CA."""
    settings = {"base_url": vendor.base_url, "tls": {"ca_file": str(vendor.ca_file)}}
    return {**RETRIES, "providers": {"openai": {**settings, **provider}}}


def ask(gateway: Any, **kwargs: Any) -> Any:
    return gateway.openai().chat.completions.with_raw_response.create(
        model="gpt-4o", messages=HELLO, **kwargs
    )


def refused(gateway: Any) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as caught:
        ask(gateway)
    return caught.value


def dead_proxy() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


def test_https_upstream_through_a_connect_tunnel_with_a_private_ca(gateway_factory, vendor, proxy):
    gateway = gateway_factory(openai_via(vendor), environ={"HTTPS_PROXY": proxy.url()})
    for _ in range(3):
        raw = ask(gateway)
        assert raw.parse().choices[0].message.content
        assert raw.headers["x-llm-attempts"] == "1"
    chunks = list(
        gateway.openai().chat.completions.create(model="gpt-4o", messages=HELLO, stream=True)
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(vendor.sim.received) == 4
    tunnels = [r for r in proxy.requests() if r.startswith("CONNECT ")]
    assert tunnels == [f"CONNECT {vendor.authority_name} HTTP/1.1"]  # one tunnel, reused
    assert gateway.state.pools.upstreams()["openai"].connects == 1
    assert set(vendor.names) == {"localhost"}  # SNI: the vendor's name, inside the tunnel


def test_lowercase_https_proxy_wins_and_no_proxy_bypasses(gateway_factory, vendor, proxy):
    environ = {"https_proxy": proxy.url(), "HTTPS_PROXY": dead_proxy()}
    gateway = gateway_factory(openai_via(vendor), environ=environ)
    assert ask(gateway).parse().choices[0].message.content
    assert proxy.requests()
    bypass = {"HTTPS_PROXY": dead_proxy(), "NO_PROXY": "example.com, localhost"}
    direct = gateway_factory(openai_via(vendor), environ=bypass)
    assert ask(direct).parse().choices[0].message.content
    assert direct.state.snapshot.providers["openai"].proxy_url is None


def test_proxy_url_overrides_the_environment(gateway_factory, vendor, proxy):
    none = gateway_factory(openai_via(vendor, proxy_url=""), environ={"HTTPS_PROXY": dead_proxy()})
    assert ask(none).parse().choices[0].message.content
    assert not proxy.requests()
    chosen = gateway_factory(openai_via(vendor, proxy_url=proxy.url()))
    assert ask(chosen).parse().choices[0].message.content
    assert proxy.requests() == [f"CONNECT {vendor.authority_name} HTTP/1.1"]


def test_proxy_credentials_are_sent_and_never_shown(gateway_factory, vendor, auth_proxy, caplog):
    caplog.set_level(logging.DEBUG)
    gateway = gateway_factory(openai_via(vendor), environ={"HTTPS_PROXY": auth_proxy.url()})
    assert ask(gateway).parse().choices[0].message.content
    wrong = gateway_factory(
        openai_via(vendor), environ={"HTTPS_PROXY": auth_proxy.url(password="not-it")}
    )
    error = refused(wrong)
    assert error.status_code == 502 and error.body["type"] == "http_error"
    message = error.body["message"]
    assert f"the proxy {auth_proxy.address} refused CONNECT {vendor.authority_name}" in message
    assert "HTTP 407" in message or "HTTP 401" in message  # tinyproxy answers CONNECT with 401
    assert error.response.headers["x-llm-attempts"] == "2"  # retried like a connect error
    for url in (gateway.url, wrong.url):
        for path in ("/status", "/metrics", "/health/providers"):
            assert PASSWORD not in get(f"{url}{path}").text
    shown = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    assert PASSWORD not in shown and "not-it" not in shown
    assert PASSWORD not in repr(gateway.state.snapshot)


def test_a_refused_proxy_is_a_retried_http_error_naming_it(gateway_factory, vendor):
    address = dead_proxy()
    gateway = gateway_factory(openai_via(vendor, proxy_url=address.replace("//", "//u:pw@")))
    error = refused(gateway)
    assert error.status_code == 502 and error.body["type"] == "http_error"
    assert f"could not connect to the proxy {address}" in error.body["message"]
    assert "pw" not in error.body["message"]
    assert error.response.headers["x-llm-attempts"] == "2"
    assert not vendor.sim.received


def test_a_connect_the_proxy_cannot_complete_is_an_http_error(gateway_factory, proxy):
    closed = free_port()
    overrides = {
        **RETRIES,
        "providers": {"openai": {"base_url": f"https://localhost:{closed}/v1"}},
    }
    gateway = gateway_factory(overrides, environ={"HTTPS_PROXY": proxy.url()})
    error = refused(gateway)
    assert error.status_code == 502 and error.body["type"] == "http_error"
    assert f"the proxy {proxy.address} refused CONNECT localhost:{closed}" in error.body["message"]
    assert error.response.headers["x-llm-attempts"] == "2"


def test_http_upstream_through_the_proxy_uses_absolute_form(gateway_factory, sim, auth_proxy):
    gateway = gateway_factory(RETRIES, environ={"HTTP_PROXY": auth_proxy.url()})
    assert ask(gateway).parse().choices[0].message.content
    (line,) = auth_proxy.requests()
    assert line == f"POST {sim.url}/v1/chat/completions HTTP/1.1"
    received = sim.completions()[-1]
    assert "proxy-authorization" not in {k.lower() for k in received.headers}


def test_http_upstream_without_the_proxy_login_is_an_http_error(gateway_factory, sim, auth_proxy):
    gateway = gateway_factory(RETRIES, environ={"HTTP_PROXY": auth_proxy.url(user="")})
    error = refused(gateway)
    assert error.status_code == 502 and error.body["type"] == "http_error"
    assert auth_proxy.address in error.body["message"] and "407" in error.body["message"]
    assert not sim.completions()


def test_an_untrusted_certificate_fails_and_verify_false_warns(gateway_factory, vendor, tmp_path):
    strict = gateway_factory({**RETRIES, "providers": {"openai": {"base_url": vendor.base_url}}})
    error = refused(strict)
    assert error.body["type"] == "http_error" and "SSLCertVerificationError" in str(error.body)
    lax = {"base_url": vendor.base_url, "tls": {"verify": False}}
    gateway = gateway_factory({**RETRIES, "providers": {"openai": lax}})
    assert ask(gateway).parse().choices[0].message.content
    (warning,) = [w for w in gateway.state.snapshot.warnings if "tls.verify" in w]
    assert "NOT verified" in warning


def test_mutual_tls_client_certificate_through_the_tunnel(gateway_factory, tmp_path, proxy):
    clients = trustme.CA()
    leaf = clients.issue_cert("llm-edge-agent")
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    for blob in leaf.cert_chain_pems:
        with cert.open("ab") as out:
            out.write(blob.bytes())
    leaf.private_key_pem.write_to_path(str(key))
    for vendor in _tls_vendor(tmp_path, client_ca=clients):
        anonymous = gateway_factory(openai_via(vendor), environ={"HTTPS_PROXY": proxy.url()})
        error = refused(anonymous)
        assert error.status_code == 502 and error.body["type"] == "http_error"
        tls = {
            "ca_file": str(vendor.ca_file),
            "client_cert_file": str(cert),
            "client_key_file": str(key),
        }
        gateway = gateway_factory(openai_via(vendor, tls=tls), environ={"HTTPS_PROXY": proxy.url()})
        assert ask(gateway).parse().choices[0].message.content
        assert len(vendor.sim.received) == 1  # the anonymous handshakes never got a request


def test_unusable_proxy_and_tls_settings_are_config_problems(sim, tmp_path):
    from proxy.config.loader import ConfigError

    bad = {
        "providers": {
            "openai": {"proxy_url": "socks5://u:hunter2@127.0.0.1:1080"},
            "anthropic": {"tls": {"ca_file": str(tmp_path / "missing.pem")}},
        }
    }
    with pytest.raises(ConfigError) as caught:
        load_snapshot(gateway_config(sim.url, tmp_path, bad), environ={})
    text = str(caught.value)
    assert "proxy_url" in text and "socks5 proxy is not supported" in text
    assert "hunter2" not in text
    assert "providers.anthropic.tls" in text and "FileNotFoundError" in text
    (tmp_path / "env").mkdir()
    plain = gateway_config(sim.url, tmp_path / "env", {})
    with pytest.raises(ConfigError) as caught:
        load_snapshot(plain, environ={"HTTP_PROXY": "socks5://u:hunter2@127.0.0.1:1080"})
    assert "HTTP_PROXY" in str(caught.value) and "hunter2" not in str(caught.value)


def test_the_environment_is_read_at_load_and_kept_out_of_reprs(sim, tmp_path, proxy):
    path = gateway_config(sim.url, tmp_path, {})
    url = proxy.url(user="u", password="hunter2")
    snapshot = load_snapshot(path, environ={"HTTP_PROXY": url, "NO_PROXY": ""})
    assert snapshot.providers["openai"].proxy_url == url
    assert snapshot.providers["anthropic"].proxy_url == url
    assert "hunter2" not in repr(snapshot)
