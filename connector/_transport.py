"""
HTTP behind a one-method interface.

:class:`AiohttpTransport` is the real one; :class:`MockTransport` calls a function
instead, for tests. aiohttp's exceptions become the connector's here and nowhere
else, sorted by what matters for retries: did the request surely not reach the server
(:class:`~connector.errors.ConnectError`) or may it have been processed
(:class:`~connector.errors.ReadError`)?
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Protocol

import aiohttp
import attrs

from .errors import ConnectError, ReadError


__all__ = [
    "AiohttpTransport",
    "Handler",
    "HttpRequest",
    "HttpResponse",
    "MockTransport",
    "Transport",
    "map_aiohttp_errors",
    "translate_aiohttp_error",
]


@attrs.frozen
class HttpRequest:
    """
    One HTTP request, ready to send.

    Attributes:
        method: The HTTP method.
        url: The absolute URL, query string included.
        body: The form-encoded body, or ``None``.
        headers: Headers, the Authorization header included; never shown in reprs.
        max_body: Read at most this many bytes of the answer, plus one (so the caller
            can tell that it was larger), and nothing when its Content-Length is
            larger; ``None`` reads it all.
    """

    method: str
    url: str
    body: bytes | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    max_body: int | None = None


@attrs.frozen
class HttpResponse:
    """
    One HTTP response.

    Attributes:
        status: The HTTP status.
        body: The raw body.
        headers: The response headers; aiohttp's are case-insensitive, a plain mapping
            should use lower-case names.
    """

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = attrs.field(factory=dict)


class Transport(Protocol):
    """Sends requests. Implementations own their connections and close them in ``aclose``."""

    async def send(self, request: HttpRequest) -> HttpResponse:
        """Send *request* and return the complete response."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


@contextlib.contextmanager
def map_aiohttp_errors(method: str, url: str) -> Iterator[None]:
    """
    Translate aiohttp's exceptions raised inside the block into the connector's.

    See :func:`translate_aiohttp_error`.
    """
    try:
        yield
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise translate_aiohttp_error(exc, method, url) from exc


def translate_aiohttp_error(
    exc: aiohttp.ClientError | TimeoutError, method: str, url: str
) -> ConnectError | ReadError:
    """
    The connector's error for an aiohttp failure, most specific match first.

    The split is by what a retry policy must know: a failure to connect means the
    request never left, anything later means the server may have acted on it.
    """
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return ConnectError(f"timed out connecting to {_origin(url)}", method=method, url=url)
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = getattr(exc, "_os_error", None)
        reason = (os_error.strerror or str(os_error)) if os_error else _describe(exc)
        return ConnectError(f"cannot connect to {_origin(url)}: {reason}", method=method, url=url)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return ReadError(f"timed out waiting for {_origin(url)}", method=method, url=url)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return ReadError(
            f"{_origin(url)} closed the connection before answering", method=method, url=url
        )
    if isinstance(exc, aiohttp.ClientError):
        return ReadError(_describe(exc), method=method, url=url)
    return ReadError(f"no answer from {_origin(url)} in time", method=method, url=url)


def _describe(exc: BaseException) -> str:
    # Some aiohttp exceptions cannot render themselves without their request context.
    try:
        text = str(exc)
    except Exception:
        text = ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


@attrs.define
class AiohttpTransport:
    """
    Sends requests with one :class:`aiohttp.ClientSession`, created on first use inside
    the running event loop.

    Args:
        connect_timeout: Seconds to establish a connection.
        read_timeout: Seconds to wait for the answer once the request is sent.
        limit: Most connections open at once.
        user_agent: The ``User-Agent`` header.
    """

    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    limit: int = 100
    user_agent: str = "twilio-workflow-connector"
    _session: aiohttp.ClientSession | None = attrs.field(default=None, init=False, repr=False)

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=self.connect_timeout, sock_read=self.read_timeout
                ),
                connector=aiohttp.TCPConnector(limit=self.limit),
                headers={"User-Agent": self.user_agent, "Accept": "application/json"},
                # The connector builds its own Authorization header; never read ~/.netrc.
                trust_env=False,
            )
        return self._session

    async def send(self, request: HttpRequest) -> HttpResponse:
        """Send *request* and read the whole answer."""
        session = self._get_session()
        try:
            async with session.request(
                request.method,
                request.url,
                data=request.body,
                headers=request.headers,
                allow_redirects=False,
            ) as response:
                if request.max_body is None:
                    body = await response.read()
                else:
                    body = await _read_at_most(response, request.max_body + 1)
                return HttpResponse(
                    status=response.status,
                    body=body,
                    headers=response.headers,  # case-insensitive already
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            # Inline rather than through map_aiohttp_errors: this is every call's path.
            raise translate_aiohttp_error(exc, request.method, request.url) from exc

    async def aclose(self) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _read_at_most(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """
    The body, cut at *limit* bytes: a huge answer is never held whole. One whose
    Content-Length is over the limit is not read at all (its headers say enough).
    """
    length = response.content_length
    if length is not None and length > limit:
        return b""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(65536):
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


Handler = Callable[[HttpRequest], HttpResponse | Awaitable[HttpResponse]]


@attrs.define
class MockTransport:
    """
    A transport that calls *handler* instead of the network; the handler may be sync
    or async, and may raise the connector's transport errors to simulate failures.

    Attributes:
        handler: Turns a request into a response.
        requests: Every request received, in order.
    """

    handler: Handler
    requests: list[HttpRequest] = attrs.field(factory=list)

    async def send(self, request: HttpRequest) -> HttpResponse:
        """Record *request* and answer with the handler."""
        self.requests.append(request)
        result = self.handler(request)
        if not isinstance(result, HttpResponse):
            result = await result
        return result

    async def aclose(self) -> None:
        """Nothing to release."""
        await asyncio.sleep(0)
