"""
A Twilio connector for workflow and automation engines.

Declarative YAML manifests describe each action; one generic async executor validates
inputs, calls Twilio through aiohttp under the connection's rate limit, and returns
typed outputs. A local Twilio-compatible emulator (:mod:`connector.emulator`) is the
default when no credentials are given.
"""

from __future__ import annotations

from ._connection import Connection, Limiter, default_connector
from ._convert import OpenEnum, Record, to_json
from ._manifest import (
    ActionSpec,
    ConnectorSpec,
    DefinitionSpec,
    FieldSpec,
    ParamSpec,
    load_manifest,
)
from ._ratelimit import sliding_window_limiter
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
    MessageMayHaveBeenSentError,
    NotFoundError,
    PluginLoadError,
    RateLimitError,
    ReadError,
    ServerError,
    TransportError,
    TwilioAPIError,
    UnsafeLinkError,
)


__all__ = [
    "ActionSpec",
    "AiohttpTransport",
    "AuthenticationError",
    "BadRequestError",
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
    "MessageMayHaveBeenSentError",
    "MockTransport",
    "NotFoundError",
    "OpenEnum",
    "ParamSpec",
    "PluginLoadError",
    "RateLimitError",
    "ReadError",
    "Record",
    "RetryPolicy",
    "ServerError",
    "Transport",
    "TransportError",
    "TwilioAPIError",
    "UnsafeLinkError",
    "default_connector",
    "input_schema",
    "load_manifest",
    "output_schema",
    "sliding_window_limiter",
    "to_json",
]


def __getattr__(name: str) -> str:
    if name == "__version__":
        from importlib.metadata import version

        return version("twilio-workflow-connector")
    raise AttributeError(f"module 'connector' has no attribute {name!r}")
