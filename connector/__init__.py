"""
A Twilio connector for workflow and automation engines.

Declarative YAML manifests describe each action; one generic async executor validates
inputs, calls Twilio through aiohttp under the connection's rate limit, and returns
typed outputs. A local Twilio-compatible emulator (:mod:`connector.emulator`) is the
default when no credentials are given.
"""

from __future__ import annotations

import typing as _typing


if _typing.TYPE_CHECKING:
    from ._blocking import BlockingConnection
    from ._clock import Clock
    from ._connect import open_connection
    from ._connection import Connection, Limiter, default_connector
    from ._convert import OpenEnum, Record, to_json, to_json_data
    from ._local_emulator import RunningEmulator, running_emulator
    from ._manifest import (
        ActionSpec,
        ConnectorSpec,
        DefinitionSpec,
        FieldSpec,
        ParamSpec,
        load_manifest,
    )
    from ._media import MediaContent, MediaPolicy
    from ._pacing import Pacing, PacingStatus, SenderProfile
    from ._ratelimit import SlidingWindowLimiter, sliding_window_limiter
    from ._retry import RetryPolicy
    from ._schemas import input_schema, output_schema
    from ._transport import AiohttpTransport, HttpRequest, HttpResponse, MockTransport, Transport
    from .errors import (
        AuthenticationError,
        BadRequestError,
        ConnectError,
        ConnectorError,
        InputIssue,
        InvalidInputError,
        ManifestError,
        MediaTooLargeError,
        MessageMayHaveBeenSentError,
        NoReplyError,
        NotFoundError,
        OptedOutError,
        PluginLoadError,
        RateLimitError,
        ReadError,
        ServerError,
        SkippedError,
        TransportError,
        TwilioAPIError,
        UnsafeLinkError,
    )


__all__ = [
    "ActionSpec",
    "AiohttpTransport",
    "AuthenticationError",
    "BadRequestError",
    "BlockingConnection",
    "Clock",
    "ConnectError",
    "Connection",
    "ConnectorError",
    "ConnectorSpec",
    "DefinitionSpec",
    "FieldSpec",
    "HttpRequest",
    "HttpResponse",
    "InputIssue",
    "InvalidInputError",
    "Limiter",
    "ManifestError",
    "MediaContent",
    "MediaPolicy",
    "MediaTooLargeError",
    "MessageMayHaveBeenSentError",
    "MockTransport",
    "NoReplyError",
    "NotFoundError",
    "OpenEnum",
    "OptedOutError",
    "Pacing",
    "PacingStatus",
    "ParamSpec",
    "PluginLoadError",
    "RateLimitError",
    "ReadError",
    "Record",
    "RetryPolicy",
    "RunningEmulator",
    "SenderProfile",
    "ServerError",
    "SkippedError",
    "SlidingWindowLimiter",
    "Transport",
    "TransportError",
    "TwilioAPIError",
    "UnsafeLinkError",
    "default_connector",
    "input_schema",
    "load_manifest",
    "open_connection",
    "output_schema",
    "running_emulator",
    "sliding_window_limiter",
    "to_json",
    "to_json_data",
]


# Names resolve on first use, so that `twilio-connector actions` or a host that only
# reads manifests does not pay for importing aiohttp.
_LAZY = {
    "ActionSpec": "._manifest",
    "AiohttpTransport": "._transport",
    "AuthenticationError": ".errors",
    "BadRequestError": ".errors",
    "BlockingConnection": "._blocking",
    "Clock": "._clock",
    "ConnectError": ".errors",
    "Connection": "._connection",
    "ConnectorError": ".errors",
    "ConnectorSpec": "._manifest",
    "default_connector": "._connection",
    "DefinitionSpec": "._manifest",
    "FieldSpec": "._manifest",
    "HttpRequest": "._transport",
    "HttpResponse": "._transport",
    "input_schema": "._schemas",
    "InputIssue": ".errors",
    "InvalidInputError": ".errors",
    "Limiter": "._connection",
    "load_manifest": "._manifest",
    "open_connection": "._connect",
    "ManifestError": ".errors",
    "MediaContent": "._media",
    "MediaPolicy": "._media",
    "MediaTooLargeError": ".errors",
    "MessageMayHaveBeenSentError": ".errors",
    "MockTransport": "._transport",
    "NoReplyError": ".errors",
    "NotFoundError": ".errors",
    "OpenEnum": "._convert",
    "OptedOutError": ".errors",
    "output_schema": "._schemas",
    "Pacing": "._pacing",
    "PacingStatus": "._pacing",
    "ParamSpec": "._manifest",
    "PluginLoadError": ".errors",
    "RateLimitError": ".errors",
    "ReadError": ".errors",
    "Record": "._convert",
    "RetryPolicy": "._retry",
    "RunningEmulator": "._local_emulator",
    "running_emulator": "._local_emulator",
    "SenderProfile": "._pacing",
    "ServerError": ".errors",
    "SkippedError": ".errors",
    "sliding_window_limiter": "._ratelimit",
    "SlidingWindowLimiter": "._ratelimit",
    "to_json": "._convert",
    "to_json_data": "._convert",
    "Transport": "._transport",
    "TransportError": ".errors",
    "TwilioAPIError": ".errors",
    "UnsafeLinkError": ".errors",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is not None:
        from importlib import import_module

        value = getattr(import_module(module, __name__), name)
        globals()[name] = value
        return value
    if name == "__version__":
        from importlib.metadata import version

        return version("twilio-workflow-connector")
    raise AttributeError(f"module 'connector' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
