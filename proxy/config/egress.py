"""How a provider's connections leave the host: through which forward proxy, with which TLS.

Both are settled when the config is loaded (a snapshot), never per request, so a gateway
without a proxy pays nothing for the feature. The environment is read as curl and the
vendor SDKs (httpx) read it: ``https_proxy``/``HTTPS_PROXY`` for https upstreams,
``http_proxy``/``HTTP_PROXY`` for http ones (lowercase first), and ``no_proxy``/``NO_PROXY``
to bypass them. A provider's ``proxy_url:`` overrides the environment (``""``: direct).
"""

from __future__ import annotations

import base64
import ipaddress
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlsplit

from proxy.config.loader import LineIndex, Problem
from proxy.config.snapshot import TLSSettings

PROXY_ENV = {"https": ("https_proxy", "HTTPS_PROXY"), "http": ("http_proxy", "HTTP_PROXY")}
NO_PROXY_ENV = ("no_proxy", "NO_PROXY")
DEFAULT_PROXY_PORT = 80  # as the Python SDKs (httpx) assume; curl would say 1080


@dataclass(frozen=True, slots=True)
class Proxy:
    """A forward proxy: where to connect, and the ``Proxy-Authorization`` to send (from the
    URL's credentials). ``shown`` names it in messages and logs, never with credentials."""

    host: str
    port: int
    shown: str
    authorization: str | None = field(default=None, repr=False)


def parse_proxy(url: str) -> Proxy:
    """A proxy URL (``http://user:pass@host:port``; no scheme means http) as a :class:`Proxy`.

    Raises ValueError with a message that never quotes the URL (it may hold a password).
    """
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme.lower() != "http":
        raise ValueError(
            f"a {parts.scheme or 'scheme-less'} proxy is not supported (only http:// proxies)"
        )
    try:
        host, port = parts.hostname, parts.port or DEFAULT_PROXY_PORT
    except ValueError:
        raise ValueError("the proxy URL has an invalid port") from None
    if not host:
        raise ValueError("the proxy URL has no host")
    authorization = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode()
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return Proxy(host, port, f"http://{netloc}", authorization)


def proxy_from_env(base_url: str, environ: Mapping[str, str]) -> str | None:
    """The proxy URL the environment gives for ``base_url``, or None (none set, or bypassed)."""
    parts = urlsplit(base_url)
    names = PROXY_ENV.get(parts.scheme.lower(), ())
    url = next((environ[name] for name in names if environ.get(name)), None)
    if url is None or not parts.hostname:
        return None
    no_proxy = next((environ[name] for name in NO_PROXY_ENV if environ.get(name)), "")
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    return None if bypassed(parts.hostname, port, no_proxy) else url


def bypassed(host: str, port: int, no_proxy: str) -> bool:
    """Does ``NO_PROXY`` exempt ``host:port``? Entries are comma (or space) separated: ``*``
    (everything), a domain (itself and its subdomains; a leading dot is ignored), an IP
    address or CIDR range, each optionally with ``:port``."""
    host = host.lower().strip("[]")
    for entry in re.split(r"[,\s]+", no_proxy.strip().lower()):
        if entry == "*":
            return True
        pattern, wanted_port = _split_port(entry)
        if not pattern or (wanted_port is not None and wanted_port != port):
            continue
        if _ip_matches(host, pattern) or host == pattern or host.endswith(f".{pattern}"):
            return True
    return False


def _split_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):  # [v6] or [v6]:port
        address, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return address, int(port) if port.isdigit() else None
    if entry.count(":") == 1:
        name, _, port = entry.partition(":")
        return name.lstrip("."), int(port) if port.isdigit() else None
    return entry.lstrip("."), None


def _ip_matches(host: str, pattern: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
        if "/" in pattern:
            return address in ipaddress.ip_network(pattern, strict=False)
        return address == ipaddress.ip_address(pattern)
    except ValueError:
        return False


def tls_context(settings: TLSSettings) -> ssl.SSLContext:
    """The TLS context of a provider's connections. Reads the files: call at load, or when a
    pool is created, never per request. Raises OSError/ssl.SSLError on unusable files."""
    if settings == TLSSettings():
        return default_tls_context()
    context = ssl.create_default_context(cafile=settings.ca_file)
    if settings.client_cert_file:
        context.load_cert_chain(settings.client_cert_file, settings.client_key_file)
    if not settings.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


@lru_cache(maxsize=1)
def default_tls_context() -> ssl.SSLContext:
    """One default (verifying) context: creating one loads the CA bundle, ~ms of work."""
    return ssl.create_default_context()


def egress_problems(
    providers: Mapping[str, Any], lines: LineIndex, environ: Mapping[str, str]
) -> list[Problem]:
    """A proxy URL or TLS files that cannot work, found at load rather than at the first
    request. Messages never quote a proxy URL (it may hold a password)."""
    problems: list[Problem] = []
    for name, provider in providers.items():
        base_url = provider.get("base_url")
        if not isinstance(base_url, str):
            continue
        configured = provider.get("proxy_url")
        if "proxy_url" in provider:
            url, path, origin = configured, ("providers", name, "proxy_url"), ""
        else:
            url, path = proxy_from_env(base_url, environ), ("providers", name, "base_url")
            origin = "the proxy the environment gives for it (HTTPS_PROXY, HTTP_PROXY): "
        if isinstance(url, str) and url:
            try:
                parse_proxy(url)
            except ValueError as exc:
                problems.append(lines.problem(path, f"{origin}{exc}"))
        tls = provider.get("tls")
        if isinstance(tls, dict):
            problems.extend(_tls_problems(name, tls, lines))
    return problems


def _tls_problems(name: str, tls: Mapping[str, Any], lines: LineIndex) -> list[Problem]:
    path = ("providers", name, "tls")
    if tls.get("client_key_file") and not tls.get("client_cert_file"):
        return [lines.problem((*path, "client_key_file"), "needs client_cert_file beside it")]
    known = {key: tls[key] for key in TLSSettings.__slots__ if key in tls}
    if not all(isinstance(v, str) for k, v in known.items() if k != "verify"):
        return []  # the schema reports wrong types
    try:
        tls_context(TLSSettings(**known))
    except (OSError, ssl.SSLError, ValueError) as exc:
        return [lines.problem(path, f"cannot be used: {type(exc).__name__}: {exc}")]
    return []
