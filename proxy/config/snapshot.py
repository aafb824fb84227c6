"""The immutable config snapshot the engine reads.

A snapshot is built once per (re)load, fully resolved (per-model retry/timeouts already merged
over provider and top-level settings), and swapped atomically; a request holds on to the
snapshot it started with, prices included.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType

from proxy.capabilities.model import UNKNOWN, Capabilities
from proxy.config.cache import CacheSettings
from proxy.config.limits import LimitsSettings
from proxy.pricing import Price


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter: attempt 1 immediate, then initial * 2**(n-1), capped."""

    max_retries: int = 3
    initial_backoff_ms: int = 100
    max_backoff_ms: int = 5000
    jitter: float = 0.1
    max_retry_after_ms: int = 30000


@dataclass(frozen=True, slots=True)
class Timeouts:
    """``request_ms`` is the total budget across all attempts and backoffs."""

    connect_ms: int = 5000
    request_ms: int = 30000
    first_byte_ms: int | None = None


@dataclass(frozen=True, slots=True)
class PoolSettings:
    max_idle_per_host: int = 20
    idle_timeout_s: float = 90
    tcp_keepalive_s: float = 60
    max_connections: int = 100


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """Per-provider circuit breaker; ``enabled: false`` keeps it closed forever."""

    enabled: bool = True
    failure_threshold: int = 5
    failure_rate: float = 0.5
    window_s: float = 30
    min_requests: int = 10
    cooldown_s: float = 30
    half_open_probes: int = 1


@dataclass(frozen=True, slots=True)
class HealthCheckSettings:
    timeout_ms: int = 2000
    interval_s: float = 0  # 0 = no background checks; /health/providers checks on demand


@dataclass(frozen=True, slots=True)
class TLSSettings:
    """How a provider's TLS is checked: ``ca_file`` replaces the system CAs (a private CA, a
    TLS-inspecting proxy's); a client certificate and key make it mutual TLS."""

    ca_file: str | None = None
    client_cert_file: str | None = None
    client_key_file: str | None = None
    verify: bool = True


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """One upstream endpoint. ``api_key`` is excluded from repr so it never reaches a log."""

    name: str
    type: str
    base_url: str
    api_key: str = field(default="", repr=False)
    retry: RetryPolicy = RetryPolicy()
    timeouts: Timeouts = Timeouts()
    pool: PoolSettings = PoolSettings()
    breaker: BreakerSettings = BreakerSettings()
    health_check: HealthCheckSettings = HealthCheckSettings()
    anthropic_version: str = "2023-06-01"
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    drop_unsupported_params: bool = False
    api_version: str | None = None
    """azure_openai: the classic deployment URL's ``api-version``; None = the v1 API."""
    azure_ad_token: str = field(default="", repr=False)
    """azure_openai: a Microsoft Entra ID token (from ``${VAR}`` or ``azure_ad_token_file``)."""
    azure_ad_token_file: str | None = None
    """Where ``azure_ad_token`` was read from: the config watcher reloads when it changes."""
    send_stream_options: bool = True
    """openai_compatible: false for servers that refuse ``stream_options``."""
    proxy_url: str | None = field(default=None, repr=False)
    """The forward proxy its connections go through (credentials included), resolved at load
    from ``proxy_url:`` or the environment (HTTPS_PROXY, NO_PROXY, ...); None: direct."""
    tls: TLSSettings = TLSSettings()
    project: str = ""
    """vertex_ai: the Google Cloud project."""
    location: str = ""
    """vertex_ai: the region (``us-central1``) or ``global``."""
    credentials_file: str = ""
    """vertex_ai: a service-account key file; its token is re-read when the file changes."""

    def connection_key(self) -> tuple[object, ...]:
        """What a provider's pool depends on; unchanged key = keep the warm pool on reload."""
        return (
            self.type,
            self.base_url,
            self.pool,
            self.timeouts.connect_ms,
            self.proxy_url,
            self.tls,
        )


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """A routable model: ``name`` is what clients ask for, ``upstream_model`` the vendor id."""

    name: str
    provider: str
    upstream_model: str
    price: Price
    aliases: tuple[str, ...] = ()
    retry: RetryPolicy = RetryPolicy()
    timeouts: Timeouts = Timeouts()
    fallbacks: tuple[str, ...] = ()
    max_tokens: int = 4096
    drop_unsupported_params: bool = False
    price_date: str | None = None
    capabilities: Capabilities = UNKNOWN
    """Catalog defaults overridden by the config; ``capabilities.max_output_tokens`` etc."""
    price_source: str = "config"  # or "catalog" when the config gave no price
    display_name: str | None = None
    released: str | None = None


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """Inbound bearer tokens (already read from the environment); empty = auth off."""

    tokens: tuple[str, ...] = field(default=(), repr=False)
    protect_ops_endpoints: bool = False


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    level: str = "INFO"
    format: str = "json"
    access_log: bool = True
    log_content: bool = False


@dataclass(frozen=True, slots=True)
class ServerSettings:
    max_body_bytes: int = 10 * 1024 * 1024
    drain_timeout_s: float = 30
    auth: AuthSettings = AuthSettings()
    logging: LoggingSettings = LoggingSettings()


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a request needs from the config, frozen. ``lookup`` maps names and aliases."""

    providers: Mapping[str, ProviderConfig]
    models: Mapping[str, ModelConfig]
    lookup: Mapping[str, ModelConfig]
    server: ServerSettings = ServerSettings()
    version: str = ""
    loaded_at: float = 0.0
    source: str = ""
    warnings: tuple[str, ...] = ()
    cache: CacheSettings = field(default_factory=CacheSettings)
    ambiguous: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    """Undated names several configured snapshots share -> those names (a 404 lists them)."""
    limits: LimitsSettings = field(default_factory=LimitsSettings)

    def resolve(self, name: str) -> ModelConfig | None:
        return self.lookup.get(name)


def freeze(mapping: dict) -> Mapping:
    return MappingProxyType(dict(mapping))


ZERO = Decimal(0)
