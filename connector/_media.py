# SPDX-License-Identifier: MIT
"""
Media files of messages: where their URLs may point, what a download returns, and how
it is written to disk.

A media URL comes from outside (an incoming-message webhook's ``MediaUrl0``), so the
connector treats it as untrusted: it is fetched with the account's credentials only
when it is on Twilio's API (``api.twilio.com``, ``api.{edge}.{region}.twilio.com``) or
on the connection's own base URL, and names one of this account's media; Twilio then
redirects to its media store, which is fetched with no credentials at all.
:meth:`connector.Connection.download_media` does the requests; this module holds the
rules and the value it returns.
"""

from __future__ import annotations

import base64
import mimetypes
import os
import re
import sys
import tempfile
from email.message import Message
from pathlib import Path
from typing import Any, Final

import attrs


__all__ = [
    "DEFAULT_MAX_BYTES",
    "REDIRECT_STATUSES",
    "TWILIO_EDGES",
    "MediaContent",
    "MediaPolicy",
    "filename_for",
    "is_twilio_api_host",
    "save",
    "write_private",
]

#: Twilio's edge locations (docs: global-infrastructure/edge-locations).
TWILIO_EDGES: Final = frozenset(
    {
        "sydney",
        "sao-paulo",
        "dublin",
        "frankfurt",
        "tokyo",
        "singapore",
        "ashburn",
        "umatilla",
        "roaming",
    }
)
# A processing region: us1, ie1, au1 ... (two letters and a digit).
_REGION: Final = re.compile(r"[a-z]{2}[0-9]")
#: The largest media file a download accepts unless told otherwise: Twilio's limit for
#: images (5 MB); other types are limited to less.
DEFAULT_MAX_BYTES: Final = 5 * 1024 * 1024
#: The answers that are followed to another URL.
REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
_UNSAFE_NAME: Final = re.compile(r"[^A-Za-z0-9._-]+")


def is_twilio_api_host(host: str | None) -> bool:
    """
    Whether *host* is Twilio's REST API: ``api.twilio.com`` or the regional form
    ``api.{edge}.{region}.twilio.com`` (``api.dublin.ie1.twilio.com``). The legacy
    ``api.{region}.twilio.com`` stopped working in April 2026 and is not accepted.
    """
    if not host:
        return False
    host = host.lower().rstrip(".")
    if host == "api.twilio.com":
        return True
    labels = host.split(".")
    return (
        len(labels) == 5
        and labels[0] == "api"
        and labels[1] in TWILIO_EDGES
        and _REGION.fullmatch(labels[2]) is not None
        and labels[3:] == ["twilio", "com"]
    )


@attrs.frozen
class MediaPolicy:
    """
    How a download tries again and how far it follows redirects.

    Twilio answers 404 for a short while after a message arrives, while its media
    propagates; such a 404 (and a 429, a 5xx or a broken connection) is tried again.

    Attributes:
        attempts: Tries in all.
        backoff: Seconds before the second try; doubled before each later one.
        max_redirects: Redirects followed at most.
    """

    attempts: int = 4
    backoff: float = 0.5
    max_redirects: int = 5

    def wait(self, attempt: int) -> float:
        """Seconds to wait after failed try number *attempt* (1-based)."""
        return float(self.backoff * 2.0 ** (attempt - 1))


@attrs.frozen
class MediaContent:
    """
    A downloaded media file.

    Attributes:
        url: The URL asked for.
        content: The bytes.
        content_type: The MIME type the media store gave (``image/jpeg``).
        filename: The store's file name, else the media SID with an extension for its
            type; always a plain name, safe to join to a directory.
        path: Where it was written, when a path was given.
    """

    url: str
    content: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")
    content_type: str
    filename: str
    path: Path | None = None

    @property
    def size(self) -> int:
        """The content's length in bytes."""
        return len(self.content)

    def to_wire(self) -> dict[str, Any]:
        """The JSON form of the ``MediaFile`` definition (base64 content when not written)."""
        return {
            "url": self.url,
            "content_type": self.content_type,
            "filename": self.filename,
            "size": self.size,
            "path": None if self.path is None else str(self.path),
            "content_base64": (
                None if self.path is not None else base64.b64encode(self.content).decode("ascii")
            ),
        }


def _safe(name: str) -> str:
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    return _UNSAFE_NAME.sub("_", name).strip("._")[:100]


def filename_for(disposition: str | None, url: str, content_type: str) -> str:
    """
    A file name for a media file: the one in its ``Content-Disposition``, else the last
    segment of its URL (the ``ME...`` SID) with an extension for *content_type*. Either
    is reduced to letters, digits, ``.``, ``_`` and ``-``, with no directory part.
    """
    if disposition:
        header = Message()
        header["content-disposition"] = disposition
        given = _safe(header.get_filename() or "")
        if given:
            return given
    stem = _safe(url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]) or "media"
    extension = mimetypes.guess_extension(content_type.split(";", 1)[0].strip()) or ""
    return stem if stem.endswith(extension) else stem + extension


def write_private(path: Path, data: bytes) -> Path:
    """
    Write *data* to *path* whole or not at all, readable by its owner only (0600): a
    temporary file in the same directory, renamed over *path*.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            if sys.platform != "win32":
                os.fchmod(out.fileno(), 0o600)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return path


def save(to: str | Path, filename: str, data: bytes) -> Path:
    """
    Write a media file to *to*, or into it under *filename* when it is a directory (an
    existing one, or a path ending in a separator), with :func:`write_private`.
    """
    target = Path(to).expanduser()
    if target.is_dir() or str(to).endswith(("/", os.sep)):
        target = target / filename
    return write_private(target, data)
