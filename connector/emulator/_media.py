# SPDX-License-Identifier: MIT
"""
Media content, served as Twilio serves it.

Twilio's media URL (``/2010-04-01/Accounts/AC.../Messages/MM.../Media/ME...``, without
``.json``) needs the account's credentials and answers ``302 Found`` to its media store,
which serves the bytes to anyone holding the link. The emulator does the same: its
store is ``/emulator/media/MM.../ME...``, with no credentials, on the same (loopback)
host as the inbox and admin routes.

Where a media file's bytes come from, first match wins:

1. the bytes posted with an incoming MMS (``POST /emulator/inbound`` as
   ``multipart/form-data``, one part named ``Media`` per file, with its file name and
   content type);
2. the media's URL, when it is on a loopback host (``127.0.0.1``, ``localhost``,
   ``[::1]``): fetched once, when first asked for, at most 5 MiB;
3. otherwise a small placeholder of the media's type: a 1x1 PNG, JPEG or GIF, a line
   of text, or a few bytes of anything else.

Bytes are kept in memory (64 MiB at most, the oldest forgotten first), not in the
database: after a restart, a placeholder is served.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
from collections import OrderedDict
from typing import Final
from urllib.parse import urlsplit

import aiohttp
import attrs


__all__ = [
    "MAX_MEDIA_BYTES",
    "STORE_PREFIX",
    "MediaFiles",
    "StoredMedia",
    "fetch_loopback",
    "is_loopback_url",
    "placeholder",
]

log = logging.getLogger("connector.emulator")

#: Where the emulator's media store serves content (no credentials).
STORE_PREFIX: Final = "/emulator/media/"
#: The largest media file fetched or accepted (Twilio's limit for images).
MAX_MEDIA_BYTES: Final = 5 * 1024 * 1024
#: Bytes kept in memory in all; the oldest files are forgotten first.
MAX_TOTAL_BYTES: Final = 64 * 1024 * 1024
_FETCH_TIMEOUT: Final = 5.0

_PLACEHOLDERS: Final = {
    "image/png": base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
    ),
    "image/gif": base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"),
    # A 1x1 grey baseline JPEG.
    "image/jpeg": base64.b64decode(
        "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDABALDA4MChAODQ4SERATGCgaGBYWGDEjJR0oOjM9PDkzODdASFxO"
        "QERXRTc4UG1RV19iZ2hnPk1xeXBkeFxlZ2P/2wBDARESEhgVGC8aGi9jQjhCY2NjY2NjY2NjY2NjY2NjY2Nj"
        "Y2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2P/wAARCAABAAEDASIAAhEBAxEB/8QAFQABAQAAAAAA"
        "AAAAAAAAAAAAAAb/xAAUEAEAAAAAAAAAAAAAAAAAAAAA/8QAFAEBAAAAAAAAAAAAAAAAAAAAAP/EABQRAQAA"
        "AAAAAAAAAAAAAAAAAAD/2gAMAwEAAhEDEQA/AKYAH//Z"
    ),
}


@attrs.frozen
class StoredMedia:
    """
    A media file's content.

    Attributes:
        content_type: Its MIME type.
        content: The bytes.
        filename: The file name it came with, if any.
    """

    content_type: str
    content: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")
    filename: str | None = None


def placeholder(content_type: str) -> bytes:
    """A small file of *content_type*: a 1x1 image, a line of text, or a few bytes."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "image/jpg":
        kind = "image/jpeg"
    if kind in _PLACEHOLDERS:
        return _PLACEHOLDERS[kind]
    if kind.startswith("text/"):
        return b"Placeholder media from the Twilio emulator.\n"
    return b"emulator placeholder media\n"


def is_loopback_url(url: str) -> bool:
    """Whether *url* is http(s) on a loopback host (the only ones the emulator fetches)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def fetch_loopback(url: str, *, limit: int = MAX_MEDIA_BYTES) -> StoredMedia | None:
    """
    Fetch a media file from a loopback URL; ``None`` when it is not one, fails, or is
    over *limit* (a placeholder is served then).
    """
    path = urlsplit(url).path
    # The emulator's own routes would answer with a fetch of their own.
    if not is_loopback_url(url) or path.startswith((STORE_PREFIX, "/2010-04-01/")):
        return None
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=_FETCH_TIMEOUT)) as session,
            session.get(url, allow_redirects=False) as response,
        ):
            if response.status != 200:
                log.info("media %s answered %d; serving a placeholder", url, response.status)
                return None
            data = await response.content.read(limit + 1)
            if len(data) > limit:
                log.info("media %s is over %d bytes; serving a placeholder", url, limit)
                return None
            content_type = response.headers.get("Content-Type", "application/octet-stream")
            return StoredMedia(content_type, data)
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.info("media %s could not be fetched (%s); serving a placeholder", url, exc)
        return None


class MediaFiles:
    """
    Media bytes by media SID (``ME...``), in memory, at most ``MAX_TOTAL_BYTES``.

    Attributes:
        base_url: Where the emulator is reached (``http://127.0.0.1:PORT``), once known:
            the media URLs it posts in webhooks and redirects to are built on it.
    """

    def __init__(self, *, budget: int = MAX_TOTAL_BYTES) -> None:
        self.base_url: str | None = None
        self._files: OrderedDict[str, StoredMedia] = OrderedDict()
        self._size = 0
        self._budget = budget

    def put(self, sid: str, media: StoredMedia) -> None:
        """Keep *media* as the content of *sid* (forgetting the oldest over the budget)."""
        self.forget(sid)
        self._files[sid] = media
        self._size += len(media.content)
        while self._size > self._budget and len(self._files) > 1:
            _, old = self._files.popitem(last=False)
            self._size -= len(old.content)

    def get(self, sid: str) -> StoredMedia | None:
        """The content kept for *sid*, if any."""
        return self._files.get(sid)

    def forget(self, sid: str) -> None:
        """Drop what is kept for *sid*."""
        old = self._files.pop(sid, None)
        if old is not None:
            self._size -= len(old.content)

    def content_url(self, account_sid: str, message_sid: str, media_sid: str) -> str | None:
        """Twilio's media URL on this emulator (``None`` while its address is unknown)."""
        if self.base_url is None:
            return None
        return (
            f"{self.base_url}/2010-04-01/Accounts/{account_sid}/Messages/{message_sid}"
            f"/Media/{media_sid}"
        )

    def store_url(self, base_url: str, message_sid: str, media_sid: str) -> str:
        """Where the media store serves a file, without credentials."""
        return f"{base_url}{STORE_PREFIX}{message_sid}/{media_sid}"
