"""The opt-in pytest plugin's inbox helpers, run in a pytester sandbox."""

from __future__ import annotations

import pytest


# Every test runs pytest in a subprocess.
pytestmark = pytest.mark.slow


pytest_plugins = ["pytester"]

CONFTEST = """
pytest_plugins = ["connector.testing"]
"""

HELPERS = """
import aiohttp
import pytest

HANDSET = "+15551230001"


async def send(emu, body):
    auth = aiohttp.encode_basic_auth(emu.account_sid, emu.auth_token)
    url = f"{emu.base_url}/2010-04-01/Accounts/{emu.account_sid}/Messages.json"
    form = {"To": HANDSET, "From": "+15005550006", "Body": body}
    async with aiohttp.ClientSession(headers={"Authorization": auth}) as s:
        async with s.post(url, data=form) as r:
            return r.status, await r.json()
"""


def run(pytester: pytest.Pytester, tests: str) -> pytest.RunResult:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_sms=HELPERS + tests)
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "filterwarnings = error\n"
    )
    return pytester.runpytest_subprocess("-p", "no:anyio", "-p", "no:cacheprovider")


def test_expect_sms_and_reply(pytester: pytest.Pytester) -> None:
    """expect_sms returns the matching SMS; reply answers as its handset."""
    result = run(
        pytester,
        """
async def test_flow(twilio_inbox):
    await send(twilio_inbox.emulator, "Your code is 123456")
    message = await twilio_inbox.expect_sms(to=HANDSET, body_matches=r"code is \\d{6}")
    assert message["to"] == HANDSET
    inbound = await twilio_inbox.reply("thanks")
    assert (inbound["from"], inbound["to"]) == (HANDSET, "+15005550006")
    twilio_inbox.fail_next(HANDSET, 21610)
    status, body = await send(twilio_inbox.emulator, "again")
    assert (status, body["code"]) == (400, 21610)
""",
    )
    result.assert_outcomes(passed=1)


def test_expect_sms_failure_lists_what_arrived(pytester: pytest.Pytester) -> None:
    """A missing SMS fails with the SMS that did arrive."""
    result = run(
        pytester,
        """
@pytest.mark.allow_unexpected_sms
async def test_missing(twilio_inbox):
    await send(twilio_inbox.emulator, "something else")
    await twilio_inbox.expect_sms(to=HANDSET, body_matches="code", timeout=0.05)
""",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*no SMS matching*body_matches='code'*", "*'something else'*"])


def test_leftover_sms_fail_at_teardown_unless_allowed(pytester: pytest.Pytester) -> None:
    """An unexpected SMS errors the test at teardown; the marker opts out."""
    result = run(
        pytester,
        """
async def test_leaves_one(twilio_inbox):
    await send(twilio_inbox.emulator, "surprise")


@pytest.mark.allow_unexpected_sms
async def test_allowed(twilio_inbox):
    await send(twilio_inbox.emulator, "surprise")
""",
    )
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*sent 1 SMS it never expected*", "*'surprise'*"])
