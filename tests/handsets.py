"""
People who answer on time, for runs that wait for replies: the emulator's clock as the
run's clock, and scripted messages posted as each handset sends them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import attrs

from connector.emulator import EmulatorServer


@attrs.frozen
class Text:
    """A message a handset sends, *at* seconds after the script started."""

    at: float
    from_: str
    to: str
    body: str
    service: str | None = None


class Handsets:
    """
    A run's clock that is the emulator's (a ``ManualClock``): time stands still until
    the run sleeps, then jumps to the end of the sleep, as a timer would fire. On the
    way, each scripted message whose time has come is posted to the emulator as its
    handset sends it (``POST /emulator/inbound``), at that very emulator time.

    Args:
        emulator: An emulator on a ``ManualClock`` (the ``twilio_emulator`` fixture's).
    """

    def __init__(self, emulator: EmulatorServer) -> None:
        self.emulator = emulator
        self.clock: Any = emulator.state.clock
        self.start = self.clock.now()
        self.script: list[Text] = []
        self.sleeps = 0
        #: A sleep past this many seconds from the start never ends (the run's process
        #: has stopped, as far as the run can tell); :attr:`stopped` is set then.
        self.stop_at: float | None = None
        self.stopped = asyncio.Event()
        self._held: asyncio.Future[None] = asyncio.Future()

    def text(self, at: float, from_: str, to: str, body: str, service: str | None = None) -> None:
        """Script a message from *from_* to *to*, *at* seconds after the start."""
        self.script.append(Text(at, from_, to, body, service))
        self.script.sort(key=lambda t: t.at)

    def now(self) -> float:
        """The emulator's time."""
        return float(self.clock.now())

    async def sleep(self, seconds: float) -> None:
        """Let *seconds* of the emulator's time pass, posting what falls due meanwhile."""
        self.sleeps += 1
        due = self.now() + seconds
        await asyncio.sleep(0)
        if self.stop_at is not None and due > self.start + self.stop_at:
            self.stop_at = None
            self.stopped.set()
            # Until the test cancels it, as a process is killed, or lets it go on.
            self._held = asyncio.get_running_loop().create_future()
            await self._held
        while self.script and self.start + self.script[0].at <= due:
            text = self.script.pop(0)
            self._advance_to(self.start + text.at)
            await self.post(text)
        self._advance_to(due)

    def _advance_to(self, moment: float) -> None:
        if moment > self.now():
            self.emulator.advance(moment - self.now())

    def release(self) -> None:
        """Let the sleep held at :attr:`stop_at` go on (to its end)."""
        self._held.set_result(None)

    async def send(self, from_: str, to: str, body: str) -> None:
        """Post a message now."""
        await self.post(Text(self.now() - self.start, from_, to, body))

    def advance(self, seconds: float) -> None:
        """Let *seconds* pass outside any run (the runner is down)."""
        self._advance_to(self.now() + seconds)

    async def post(self, text: Text) -> None:
        """Send *text* as its handset does: ``POST /emulator/inbound``."""
        form = {"To": text.to, "From": text.from_, "Body": text.body}
        if text.service is not None:
            form["MessagingServiceSid"] = text.service
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.emulator.base_url}/emulator/inbound", data=form) as answer,
        ):
            assert answer.status == 201, await answer.text()
