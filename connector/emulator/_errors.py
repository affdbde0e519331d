# SPDX-License-Identifier: MIT
"""
Twilio REST errors as the emulator answers them: ``{code, message, more_info, status}``.
"""

from __future__ import annotations

import json

from aiohttp import web


__all__ = ["ApiError", "error_response"]


class ApiError(Exception):
    """
    An error answer from the emulated API.

    Args:
        status: HTTP status.
        code: Twilio error code.
        message: Human-readable text.
    """

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> web.Response:
        """
        Render as Twilio renders REST errors.

        Returns:
            A JSON response with exactly ``code``, ``message``, ``more_info`` and ``status``.
        """
        return error_response(self.status, self.code, self.message)


def error_response(status: int, code: int, message: str) -> web.Response:
    """
    Build a Twilio-shaped error response.

    Args:
        status: HTTP status.
        code: Twilio error code.
        message: Human-readable text.

    Returns:
        The JSON response. No ``type``/``title`` keys: twilio-python would switch to its
        RFC 9457 exception class.
    """
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")
