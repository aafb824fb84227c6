"""One upstream attempt over a pooled connection: send, classify the outcome, return or raise.

Transport failures, timeouts, unreadable bodies and wrong content types become retryable
GatewayErrors; HTTP error statuses go through the vendor's own error mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from proxy.engine.connections import ConnectFailed
from proxy.engine.http1 import BadResponse, Response, UpstreamDisconnected
from proxy.engine.pool import Lease, Pools
from proxy.engine.relay import StreamRelay
from proxy.engine.route import Target
from proxy.engine.tunnel import ProxyFailed
from proxy.errors import ErrorType, GatewayError
from proxy.providers.base import UpstreamRequest


@dataclass(slots=True)
class Reply:
    """A complete upstream JSON response in the vendor's wire format."""

    payload: dict[str, Any]
    headers: Mapping[str, str]


@dataclass(slots=True, eq=False)  # identity-hashed: the gateway keeps a set of these
class OpenStream:
    """An upstream stream whose first event has arrived; the caller relays the rest.

    ``close()`` must be called exactly once: it releases the connection (or drops it when the
    stream did not finish) and the pool lease.
    """

    response: Response
    relay: StreamRelay
    first: bytes
    _lease: Lease
    aborted: GatewayError | None = None

    def abort(self, error: GatewayError) -> None:
        """Cut the stream from outside (shutdown): the relay reports ``error`` to the client."""
        self.aborted = error
        self.response.close()

    def close(self) -> None:
        if self.relay.done:
            self.response.release()
        else:
            self.response.close()  # unfinished: the connection cannot be reused
        self._lease.__exit__(None, None, None)


def transport_error(exc: BaseException) -> GatewayError:
    """A retryable error for a failure below HTTP; never echoes request data."""
    if isinstance(exc, TimeoutError):
        return GatewayError(
            ErrorType.TIMEOUT,
            "The upstream did not answer in time.",
            retryable=True,
            counts_against_provider=True,
        )
    detail = type(exc).__name__
    if isinstance(exc, ProxyFailed):  # names the proxy, never its credentials
        message = f"Could not reach the upstream through the proxy: {exc}."
    elif isinstance(exc, ConnectFailed):  # says why: refused, DNS, a certificate not trusted
        message = f"Could not connect to the upstream ({exc})."
    elif isinstance(exc, UpstreamDisconnected):
        message = f"The upstream connection broke before the response was complete ({detail})."
    elif isinstance(exc, BadResponse):
        message = f"The upstream's response could not be read ({exc})."
    else:
        message = f"Could not reach the upstream ({detail})."
    return GatewayError(ErrorType.HTTP_ERROR, message, retryable=True, counts_against_provider=True)


UPSTREAM_FAULTS = (TimeoutError, OSError, BadResponse)
"""What a failed exchange raises (ConnectFailed and UpstreamDisconnected are OSErrors)."""


def vendor_request(target: Target, body: bytes, stream: bool) -> UpstreamRequest:
    """The vendor's request; one whose URL names the model (Azure's deployment path) says so
    with ``model_in_url`` and gets the target's upstream model."""
    vendor = target.vendor
    if getattr(vendor, "model_in_url", False):
        return vendor.chat_request(  # type: ignore[call-arg]
            target.provider, body, stream, model=target.upstream_model
        )
    return vendor.chat_request(target.provider, body, stream)


async def request_headers(req: UpstreamRequest, request_id: str) -> dict[str, str]:
    """The request's headers with the request id, and its ``auth`` headers when it has any
    (a token source's errors are GatewayErrors, judged like the attempt's own)."""
    headers = {**req.headers, "x-request-id": request_id}
    if req.auth is not None:
        headers.update(await req.auth())
    return headers


def _bad_reply(message: str) -> GatewayError:
    return GatewayError(
        ErrorType.PROVIDER_ERROR, message, retryable=True, counts_against_provider=True
    )


async def complete(
    pools: Pools, target: Target, body: bytes, request_id: str, timeout_s: float
) -> Reply:
    """A non-streaming attempt bounded by ``timeout_s``."""
    req = vendor_request(target, body, stream=False)
    headers = await request_headers(req, request_id)
    failure: GatewayError | None = None
    with pools.lease(target.provider) as pool:
        try:
            response = await pool.request(
                req.method, req.url, headers, req.body, timeout_s, whole=True
            )
        except UPSTREAM_FAULTS as exc:
            # Raised after the lease ends and outside this block: no chained context.
            failure = transport_error(exc)
    if failure is not None:
        raise failure
    status, data = response.status, response.body
    if status != 200:
        if status == 401 and req.unauthorized is not None:
            req.unauthorized()
        raise target.vendor.error_from_upstream(status, data, response.headers)
    content_type = response.content_type
    if content_type != "application/json":
        raise _bad_reply(f"The upstream answered with content type '{content_type}'.")
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise _bad_reply("The upstream answered with invalid JSON.") from None
    if not isinstance(payload, dict):
        raise _bad_reply("The upstream answered with a JSON value that is not an object.")
    return Reply(payload, response.headers)


async def open_stream(
    pools: Pools, target: Target, body: bytes, request_id: str, timeout_s: float, relay: StreamRelay
) -> OpenStream:
    """A streaming attempt: returns once the upstream's first event is translated.

    ``timeout_s`` bounds the time to that first event (the stream's first-byte deadline).
    """
    req = vendor_request(target, body, stream=True)
    headers = await request_headers(req, request_id)
    headers["accept"] = "text/event-stream"
    lease = pools.lease(target.provider)
    pool = lease.__enter__()
    response: Response | None = None
    try:
        response = await pool.request(
            req.method, req.url, headers, req.body, timeout_s, whole=False
        )
        if response.status != 200:
            if response.status == 401 and req.unauthorized is not None:
                req.unauthorized()
            data = await response.read()
            raise target.vendor.error_from_upstream(response.status, data, response.headers)
        if response.content_type != "text/event-stream":
            raise _bad_reply(
                f"The upstream answered a stream with content type '{response.content_type}'."
            )
        first = await _first_output(response, relay)
        response.set_deadline(None)  # the first event is in; the relay bounds the rest
        return OpenStream(response, relay, first, lease)
    except BaseException as exc:
        if response is not None:
            response.close()
        lease.__exit__(None, None, None)
        if isinstance(exc, UPSTREAM_FAULTS):
            raise transport_error(exc) from None
        raise


# In-stream error types (either vendor's, or the contract's after translation) that judge the
# request or the account, not the provider's health: passed to the client, never retried.
_FINAL_STREAM_ERRORS = frozenset(
    {
        "invalid_request_error",
        "invalid_request",
        "authentication_error",
        "invalid_api_key",
        "permission_error",
        "billing_error",
        "not_found_error",
        "model_not_found",
        "request_too_large",
        "insufficient_quota",
    }
)


async def _first_output(response: Response, relay: StreamRelay) -> bytes:
    """The client's first bytes. A stream whose first event is a provider-side error (say an
    ``overloaded_error``) has sent the client nothing yet, so it fails here and can be retried.
    """
    while True:
        chunk = await response.readany()
        if not chunk:
            raise _bad_reply("The upstream closed the stream before its first event.")
        out = relay.feed(chunk)
        if relay.error and relay.events_out == 1 and relay.error not in _FINAL_STREAM_ERRORS:
            raise GatewayError(
                ErrorType.PROVIDER_ERROR,
                f"The upstream's stream began with an error ({relay.error}).",
                retryable=True,
                counts_against_provider=True,
                overloaded=relay.error == "overloaded_error",
            )
        if out:
            return out
