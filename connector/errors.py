"""
Every exception the connector raises.

The hierarchy::

    ConnectorError
    ├── ManifestError                  a manifest file breaks the format
    ├── WorkflowError                  a workflow (or a run's inputs) is invalid; nothing ran
    ├── ExpressionError                a ${{ }} expression cannot be compiled or evaluated
    ├── RunError                       a run cannot start or resume
    ├── ConfigurationError             a command or host cannot start: settings are missing
    │   └── JournalVersionError        the run journal was written by a newer version
    ├── InvalidInputError (ValueError) call inputs break the action's rules; nothing was sent
    │   ├── UnknownActionError (KeyError)     the connector has no such action
    │   ├── UnknownConnectorError (KeyError)  no connector has that id
    │   └── UnsafeLinkError            a next link points away from the connection
    ├── TwilioAPIError                 Twilio answered with an error body
    │   ├── BadRequestError            400
    │   ├── AuthenticationError        401 and 403
    │   ├── NotFoundError              404
    │   ├── RateLimitError             429 (Twilio says: not processed)
    │   └── ServerError                5xx
    ├── TransportError (OSError)       no usable HTTP answer
    │   ├── ConnectError               the request surely never reached Twilio
    │   └── ReadError                  the request may have been processed
    ├── MessageMayHaveBeenSentError    a send failed after Twilio may have acted on it
    ├── MediaTooLargeError (ValueError) a media file is over the size limit; not kept
    ├── NoReplyError (TimeoutError)    no reply came within a wait's timeout (on_timeout: fail)
    ├── SkippedError                   a call was not made, on purpose; not a failure
    │   └── OptedOutError              the recipient opted out of the sender (the ledger says)
    └── PluginLoadError                an installed connector plugin failed to load

aiohttp's exceptions are translated into these in one place (``connector._transport``);
nothing above the transport sees an ``aiohttp`` exception.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs


__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "ConnectError",
    "ConnectorError",
    "ExpressionError",
    "InputIssue",
    "InvalidInputError",
    "JournalVersionError",
    "ManifestError",
    "MediaTooLargeError",
    "MessageMayHaveBeenSentError",
    "NoReplyError",
    "NotFoundError",
    "OptedOutError",
    "PluginLoadError",
    "Problem",
    "RateLimitError",
    "ReadError",
    "RunError",
    "ServerError",
    "SkippedError",
    "TransportError",
    "TwilioAPIError",
    "UnknownActionError",
    "UnknownConnectorError",
    "UnsafeLinkError",
    "WorkflowError",
]


class ConnectorError(Exception):
    """
    Base class of every error this package raises on purpose.
    """


class ManifestError(ConnectorError):
    """
    A manifest or workflow file does not follow its format.

    Attributes:
        file: The file at fault (``"<string>"`` when loaded from text).
        where: Where inside the file, as a JSON-path-like string (``actions.get_message``).
        rule: The rule that was broken, in words.
        line: 1-based line of ``where`` in the file, when known.
        column: 1-based column, when known.
    """

    def __init__(
        self,
        rule: str,
        *,
        file: str,
        where: str = "",
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.rule = rule
        self.file = file
        self.where = where
        self.line = line
        self.column = column
        location = file
        if line is not None:
            location += f":{line}"
            if column is not None:
                location += f":{column}"
        super().__init__(f"{location}: {where or '<root>'}: {rule}")


@attrs.frozen
class Problem:
    """
    One problem found in a document (a workflow, a manifest, an inputs file), located.

    Attributes:
        file: The file.
        line: 1-based line, when known.
        column: 1-based column, when known.
        where: The place in the document (``steps[0].with.body``).
        message: What is wrong, with a suggestion when there is one.
    """

    file: str
    line: int | None
    column: int | None
    where: str
    message: str

    def __str__(self) -> str:
        location = self.file
        if self.line is not None:
            location += f":{self.line}:{self.column or 1}"
        where = f"{self.where}: " if self.where else ""
        return f"{location}: {where}{self.message}"


class WorkflowError(ConnectorError):
    """
    A workflow is invalid, or a run's inputs are; nothing was run.

    Attributes:
        problems: Every problem found, in document order.
    """

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ExpressionError(ConnectorError):
    """
    A ``${{ }}`` expression cannot be compiled or evaluated.

    Attributes:
        expression: The expression's text.
        reason: What went wrong.
    """

    def __init__(self, expression: str, reason: str) -> None:
        self.expression = expression
        self.reason = reason
        super().__init__(f"${{{{ {expression} }}}}: {reason}")


class RunError(ConnectorError):
    """A run cannot start or resume (it is running elsewhere, or its workflow changed)."""


class ConfigurationError(ConnectorError):
    """
    A command or a host cannot start: credentials or settings are missing, incomplete
    or contradictory. The message names what to set.
    """


class JournalVersionError(ConfigurationError):
    """
    The run journal's schema is newer than this version of the connector knows: a newer
    version wrote it. It was left unchanged; upgrade the connector to use it.

    Attributes:
        path: The journal file.
        version: Its schema version.
        supported: The newest schema version this version knows.
    """

    def __init__(self, path: str, *, version: int, supported: int) -> None:
        self.path = path
        self.version = version
        self.supported = supported
        super().__init__(
            f"{path}: the journal has schema version {version}, written by a newer version "
            f"of the connector (this one knows versions up to {supported}); upgrade "
            "twilio-workflow-connector to use it"
        )


@attrs.frozen
class InputIssue:
    """
    One problem with one input.

    Attributes:
        key: The input key (as the manifest names it).
        rule: The rule that failed, in words.
        value: The offending value, already masked if the input is secret.
    """

    key: str
    rule: str
    value: Any = None

    def __str__(self) -> str:
        if self.value is None:
            return f"{self.key}: {self.rule}"
        shown = repr(self.value)
        if len(shown) > 60:
            size = f", {len(self.value)} long" if hasattr(self.value, "__len__") else ""
            shown = f"{shown[:50]}...{size}"
        return f"{self.key}: {self.rule} (got {shown})"


class InvalidInputError(ConnectorError, ValueError):
    """
    The inputs of a call break the action's rules. Nothing was sent.

    Every problem is reported at once, one :class:`InputIssue` per problem.

    Attributes:
        action: The action id.
        issues: The problems found.
    """

    def __init__(self, action: str, issues: Sequence[InputIssue]) -> None:
        self.action = action
        self.issues = tuple(issues)
        lines = "\n".join(f"  - {issue}" for issue in self.issues)
        count = len(self.issues)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"invalid inputs for {action!r} ({count} {noun}):\n{lines}")


class UnknownActionError(InvalidInputError, KeyError):
    """
    No action by that name: the one error of every action lookup (the CLI, a
    :class:`~connector.Connection`, a plugin, a workflow step), with a suggestion when a
    known action is close.

    It is a :class:`KeyError` too, since it is a failed lookup.

    Attributes:
        action: The name asked for.
        known: The actions that exist, as ``connector/action``.
        suggestion: The closest known action, if one is close.
    """

    def __init__(
        self, action: str, known: Sequence[str] = (), suggestion: str | None = None
    ) -> None:
        self.known = tuple(known)
        self.suggestion = suggestion
        hint = f"did you mean {suggestion!r}?" if suggestion else "see `twilio-connector actions`"
        super().__init__(action, [InputIssue("action", f"no action {action!r}; {hint}")])
        self.args = (f"no action {action!r}; {hint}",)

    @classmethod
    def among(cls, action: str, known: Sequence[str]) -> UnknownActionError:
        """
        The error for *action*, suggesting the closest of *known* (``connector/action``
        names). A bare *action* gets a bare suggestion.
        """
        import difflib

        choices = list(known) if "/" in action else [name.rpartition("/")[2] for name in known]
        close = difflib.get_close_matches(action, choices, n=1, cutoff=0.6)
        return cls(action, known, close[0] if close else None)

    def __str__(self) -> str:
        # KeyError would show the repr of the first argument instead of the message.
        return str(self.args[0])


class UnknownConnectorError(InvalidInputError, KeyError):
    """
    No installed connector has that id (the ``acme`` of ``acme/send``).

    Attributes:
        connector: The id asked for.
        known: The ids of the loaded connectors.
    """

    def __init__(self, connector: str, known: Sequence[str] = ()) -> None:
        self.connector = connector
        self.known = tuple(known)
        loaded = ", ".join(sorted(known)) or "none"
        text = f"no connector {connector!r}; loaded: {loaded}"
        super().__init__(connector, [InputIssue("connector", text)])
        self.args = (text,)

    def __str__(self) -> str:
        return str(self.args[0])


class UnsafeLinkError(InvalidInputError):
    """
    A next-page link points at another host or another account, so it is not followed:
    credentials only ever go to the connection's base URL.
    """


class TwilioAPIError(ConnectorError):
    """
    Twilio answered with an error.

    Attributes:
        status: The HTTP status.
        code: Twilio's error code (e.g. 21211), or ``None`` when the body had none.
        message: Twilio's message.
        more_info: Link to Twilio's page for the code.
        method: The HTTP method of the request.
        url: The URL of the request (never with credentials in it).
        details: Extra details Twilio sent, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: int | None = None,
        more_info: str | None = None,
        method: str = "",
        url: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.code = code
        self.more_info = more_info
        self.method = method
        self.url = url
        self.details = details
        text = f"HTTP {status}"
        if code is not None:
            text += f", Twilio error {code}"
        text += f": {message}"
        if more_info:
            text += f" ({more_info})"
        super().__init__(text)


class BadRequestError(TwilioAPIError):
    """Twilio rejected the request as invalid (HTTP 400)."""


class AuthenticationError(TwilioAPIError):
    """The credentials were refused (HTTP 401) or lack permission (HTTP 403)."""


class NotFoundError(TwilioAPIError):
    """The resource does not exist (HTTP 404)."""


class RateLimitError(TwilioAPIError):
    """
    Too many requests (HTTP 429). Twilio did not process the request.

    Attributes:
        retry_after: Seconds the server asked us to wait, if it said.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)


class ServerError(TwilioAPIError):
    """Twilio failed (HTTP 5xx)."""


class TransportError(ConnectorError, OSError):
    """
    No usable HTTP answer: the connection failed, timed out or broke.

    Attributes:
        method: The HTTP method of the request.
        url: The URL of the request.
    """

    def __init__(self, message: str, *, method: str = "", url: str = "") -> None:
        self.method = method
        self.url = url
        super().__init__(message)


class ConnectError(TransportError):
    """The connection could not be made: the request surely never reached the server."""


class ReadError(TransportError):
    """The request was sent but no complete answer came back: it may have been processed."""


class MessageMayHaveBeenSentError(ConnectorError):
    """
    A send failed in a way that leaves it unknown whether Twilio accepted it.

    It is not retried, so nothing is sent twice. Look the message up (for instance
    with ``list_messages_v2`` filtered on To, From and DateSent) before sending again.

    Attributes:
        action: The action id.
        inputs: The validated inputs of the send (secrets masked).
        cause: The error that ended the attempt.
    """

    def __init__(self, action: str, inputs: Mapping[str, Any], cause: BaseException) -> None:
        self.action = action
        self.inputs = dict(inputs)
        self.cause = cause
        super().__init__(
            f"{action}: the message may have been sent ({cause}); it was not retried, "
            "so look it up before sending again"
        )


class MediaTooLargeError(ConnectorError, ValueError):
    """
    A media file is larger than the size limit of the download; nothing was kept (and
    no more than the limit was read).

    Attributes:
        url: The media URL asked for.
        limit: The limit, in bytes.
        size: Its size when the server said it, else ``None`` (more than the limit).
    """

    def __init__(self, url: str, *, limit: int, size: int | None = None) -> None:
        self.url = url
        self.limit = limit
        self.size = size
        told = f"{size} bytes" if size is not None else "more"
        super().__init__(f"{url}: the media file is {told}, over the limit of {limit} bytes")


class NoReplyError(ConnectorError, TimeoutError):
    """
    No reply came within a wait's timeout, and the wait was told to fail then
    (``wait_for_reply`` with ``on_timeout: fail``); in a workflow, the item fails with
    this message.

    Attributes:
        recipient: The person waited for.
        seconds: The timeout.
    """

    def __init__(self, recipient: str, seconds: float) -> None:
        self.recipient = recipient
        self.seconds = seconds
        super().__init__(f"no reply from {recipient} within {seconds:g} s")


class SkippedError(ConnectorError):
    """
    A call was not made, on purpose: nothing was sent, and nothing failed. Workflows
    report the item as *skipped*, with the reason.

    Attributes:
        action: The action id.
        reason: Why, in words.
    """

    def __init__(self, action: str, reason: str) -> None:
        self.action = action
        self.reason = reason
        super().__init__(f"{action}: skipped: {reason}")


class OptedOutError(SkippedError):
    """
    A send was skipped because the recipient opted out of the sender: the connection's
    consent ledger says so (:mod:`connector.consent`), or Twilio just answered 21610 and
    the ledger now does.

    Attributes:
        sender: The send's ``From`` (``None`` when it had only a Messaging Service).
        recipient: The send's ``To``.
        code: 21610 when Twilio refused the send, ``None`` when no request was made.
    """

    def __init__(
        self,
        action: str,
        reason: str,
        *,
        sender: str | None,
        recipient: str,
        code: int | None = None,
    ) -> None:
        self.sender = sender
        self.recipient = recipient
        self.code = code
        super().__init__(action, reason)


class PluginLoadError(ConnectorError):
    """
    An installed connector plugin could not be loaded.

    The error names the distribution that installed the entry point, so a broken
    third-party package is blamed, not the host or the other plugins.

    Attributes:
        distribution: The distribution (``name version``) that registered the entry point.
        entry_point: The entry point (``name = module:attr``).
        cause: What went wrong: the import error, a bad manifest, a wrong type ...
    """

    def __init__(self, distribution: str, entry_point: str, cause: BaseException) -> None:
        self.distribution = distribution
        self.entry_point = entry_point
        self.cause = cause
        super().__init__(
            f"plugin {entry_point!r} from {distribution} failed to load: "
            f"{type(cause).__name__}: {cause}"
        )


def error_from_response(
    status: int,
    body: Mapping[str, Any] | None,
    *,
    method: str,
    url: str,
    retry_after: float | None = None,
) -> TwilioAPIError:
    """
    Build the :class:`TwilioAPIError` subclass that fits an error answer.

    Args:
        status: The HTTP status.
        body: The decoded JSON body, if it was a JSON object.
        method: The request's HTTP method.
        url: The request's URL.
        retry_after: The parsed ``Retry-After`` header, for 429s.
    """
    body = body or {}
    raw_code = body.get("code")
    code = raw_code if isinstance(raw_code, int) else None
    message = str(body.get("message") or f"HTTP {status}")
    more_info = body.get("more_info")
    details = body.get("details")
    kw: dict[str, Any] = {
        "status": status,
        "code": code,
        "more_info": more_info if isinstance(more_info, str) else None,
        "method": method,
        "url": url,
        "details": details if isinstance(details, Mapping) else None,
    }
    if status == 429:
        return RateLimitError(message, retry_after=retry_after, **kw)
    cls: type[TwilioAPIError]
    if status in (401, 403):
        cls = AuthenticationError
    elif status == 404:
        cls = NotFoundError
    elif status >= 500:
        cls = ServerError
    elif status == 400:
        cls = BadRequestError
    else:
        cls = TwilioAPIError
    return cls(message, **kw)
