"""The webhook signature policy: Twilio's published vectors and every way a request is refused."""

from __future__ import annotations

import pytest

from connector.receiving import SignatureVerifier, signature_algorithm
from connector.signature import compute_body_hash, compute_signature


# Twilio's published vectors, from twilio-python tests/unit/test_request_validator.py and
# https://www.twilio.com/docs/usage/webhooks/webhooks-security (recomputed with hmac).
VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
    "Caller": "+14158675309",
}
VECTOR_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
VECTOR_SIGNATURE_WITH_PORT = "kvajT1Ptam85bY51eRf/AJRuM3w="
DOCS_PARAMS = {**VECTOR_PARAMS, "Caller": "+12349013030", "From": "+12349013030"}
DOCS_SIGNATURE = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
JSON_BODY = b'{"property": "value", "boolean": true}'
JSON_HASH = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
JSON_SIGNATURE = "a9nBmqA0ju/hNViExpshrM61xv4="

PATH = "/myapp.php?foo=1&bar=2"
KEY = "12345"


def _verifier(public_url: str = "https://mycompany.com", **kwargs: str) -> SignatureVerifier:
    return SignatureVerifier(KEY, public_url, **kwargs)


def _pairs(params: dict[str, str]) -> list[tuple[str, str]]:
    return list(params.items())


def test_the_published_vector_is_accepted() -> None:
    """Twilio's twilio-python vector validates against the configured public URL."""
    headers = {"X-Twilio-Signature": VECTOR_SIGNATURE}
    assert _verifier().check(PATH, headers, b"", _pairs(VECTOR_PARAMS)) is None


def test_the_vector_signed_with_an_explicit_port_is_accepted() -> None:
    """The same request signed on the URL with :443 is accepted, as Twilio's SDKs do."""
    headers = {"X-Twilio-Signature": VECTOR_SIGNATURE_WITH_PORT}
    assert _verifier().check(PATH, headers, b"", _pairs(VECTOR_PARAMS)) is None
    # And the other way round: a public URL written with the port accepts both.
    with_port = _verifier("https://mycompany.com:443")
    for signature in (VECTOR_SIGNATURE, VECTOR_SIGNATURE_WITH_PORT):
        assert (
            with_port.check(PATH, {"X-Twilio-Signature": signature}, b"", _pairs(VECTOR_PARAMS))
            is None
        )


def test_the_docs_vector_is_accepted() -> None:
    """The variant in Twilio's webhook-security docs validates."""
    headers = {"X-Twilio-Signature": DOCS_SIGNATURE}
    assert _verifier().check(PATH, headers, b"", _pairs(DOCS_PARAMS)) is None


def test_the_body_hash_vector_is_accepted() -> None:
    """A JSON body signed through bodySHA256 in the URL validates, hash and signature."""
    assert compute_body_hash(JSON_BODY) == JSON_HASH
    path = f"{PATH}&bodySHA256={JSON_HASH}"
    headers = {"X-Twilio-Signature": JSON_SIGNATURE}
    assert _verifier().check(path, headers, JSON_BODY, None) is None


def test_a_json_body_that_does_not_match_its_hash_is_refused() -> None:
    """Changing the JSON body breaks the bodySHA256 check even with the URL's signature intact."""
    path = f"{PATH}&bodySHA256={JSON_HASH}"
    headers = {"X-Twilio-Signature": JSON_SIGNATURE}
    reason = _verifier().check(path, headers, b'{"property": "other"}', None)
    assert reason is not None and "bodySHA256" in reason


def test_an_unsigned_request_is_refused() -> None:
    """A request without X-Twilio-Signature is refused with that reason."""
    assert _verifier().check(PATH, {}, b"", _pairs(VECTOR_PARAMS)) == "no X-Twilio-Signature header"


def test_a_forged_signature_is_refused() -> None:
    """A signature made with another key is refused."""
    forged = compute_signature(VECTOR_URL, VECTOR_PARAMS, "not-the-token")
    reason = _verifier().check(PATH, {"X-Twilio-Signature": forged}, b"", _pairs(VECTOR_PARAMS))
    assert reason is not None and "does not match" in reason


def test_an_altered_parameter_is_refused() -> None:
    """Changing one posted parameter after signing invalidates the signature."""
    altered = {**VECTOR_PARAMS, "Digits": "9999"}
    headers = {"X-Twilio-Signature": VECTOR_SIGNATURE}
    assert _verifier().check(PATH, headers, b"", _pairs(altered)) is not None


def test_an_added_parameter_is_refused() -> None:
    """Adding a parameter after signing invalidates the signature."""
    headers = {"X-Twilio-Signature": VECTOR_SIGNATURE}
    params = [*_pairs(VECTOR_PARAMS), ("Body", "injected")]
    assert _verifier().check(PATH, headers, b"", params) is not None


@pytest.mark.parametrize(
    ("public_url", "path"),
    [
        ("https://mycompany.com", "/other.php?foo=1&bar=2"),
        ("https://mycompany.com", "/myapp.php?foo=1&bar=3"),
        ("http://mycompany.com", PATH),
        ("https://evil.example", PATH),
        ("https://mycompany.com:8443", PATH),
    ],
)
def test_a_signature_for_another_url_is_refused(public_url: str, path: str) -> None:
    """A valid signature is refused when the URL differs in path, query, scheme, host or port."""
    headers = {"X-Twilio-Signature": VECTOR_SIGNATURE}
    assert _verifier(public_url).check(path, headers, b"", _pairs(VECTOR_PARAMS)) is not None


def test_hmac_sha256_is_used_when_the_settings_header_asks() -> None:
    """X-Twilio-Webhooks-Signature-Settings selects HMAC-SHA256, and SHA1 is then refused."""
    sha256 = compute_signature(VECTOR_URL, VECTOR_PARAMS, KEY, algorithm="HMAC-SHA256")
    settings = {"X-Twilio-Webhooks-Signature-Settings": "key=KS123,algorithm=HMAC_SHA256"}
    ok = {"X-Twilio-Signature": sha256, **settings}
    assert _verifier().check(PATH, ok, b"", _pairs(VECTOR_PARAMS)) is None
    downgraded = {"X-Twilio-Signature": VECTOR_SIGNATURE, **settings}
    assert _verifier().check(PATH, downgraded, b"", _pairs(VECTOR_PARAMS)) is not None
    # Without the header, a SHA256 signature is not accepted as SHA1.
    assert _verifier().check(PATH, {"X-Twilio-Signature": sha256}, b"", _pairs(VECTOR_PARAMS))


def test_a_shared_key_also_signs() -> None:
    """With a webhook shared key configured, a request signed with it is accepted."""
    signature = compute_signature(VECTOR_URL, VECTOR_PARAMS, "shared", algorithm="HMAC-SHA256")
    headers = {
        "X-Twilio-Signature": signature,
        "X-Twilio-Webhooks-Signature-Settings": "algorithm=HMAC_SHA256",
    }
    assert _verifier(shared_key="shared").check(PATH, headers, b"", _pairs(VECTOR_PARAMS)) is None
    assert _verifier().check(PATH, headers, b"", _pairs(VECTOR_PARAMS)) is not None


def test_an_unknown_algorithm_is_refused() -> None:
    """An algorithm the listener does not know is refused rather than ignored."""
    headers = {
        "X-Twilio-Signature": VECTOR_SIGNATURE,
        "X-Twilio-Webhooks-Signature-Settings": "algorithm=HMAC_MD5",
    }
    reason = _verifier().check(PATH, headers, b"", _pairs(VECTOR_PARAMS))
    assert reason is not None and "unsupported algorithm" in reason


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "HMAC-SHA1"),
        ("", "HMAC-SHA1"),
        ("key=KS1", "HMAC-SHA1"),
        ("key=KS1,algorithm=HMAC_SHA1", "HMAC-SHA1"),
        ("key=KS1, algorithm=hmac_sha256", "HMAC-SHA256"),
        ("algorithm=HMAC-SHA256", "HMAC-SHA256"),
        ("algorithm=NONE", None),
    ],
)
def test_the_settings_header_is_parsed(header: str | None, expected: str | None) -> None:
    """The algorithm is read from the settings header; no header means HMAC-SHA1."""
    assert signature_algorithm(header) == expected


@pytest.mark.parametrize("public_url", ["mycompany.com", "ftp://mycompany.com", "https://"])
def test_a_bad_public_url_is_rejected(public_url: str) -> None:
    """The public URL must be an http(s) URL with a host."""
    with pytest.raises(ValueError, match="public URL"):
        SignatureVerifier(KEY, public_url)


def test_there_is_no_unsigned_mode() -> None:
    """A verifier cannot be built without a key."""
    with pytest.raises(ValueError, match="auth token is required"):
        SignatureVerifier("", "https://mycompany.com")
