"""X-Twilio-Signature computation and validation."""

from __future__ import annotations

import pytest

from connector.signature import (
    compute_body_hash,
    compute_signature,
    validate_body_hash,
    validate_json_signature,
    validate_signature,
)


# Vectors from twilio-python tests/unit/test_request_validator.py and Twilio's webhook
# security docs, as recorded (and recomputed) in FACTS.md section 8.2.
TOKEN = "12345"
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
    "Caller": "+14158675309",
}
BODY = '{"property": "value", "boolean": true}'
BODY_HASH = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"


def test_twilio_python_vector() -> None:
    """The twilio-python reference request signs to RSOYDt4T1cUTdK1PDd93/VVr8B8=."""
    assert compute_signature(URL, PARAMS, TOKEN) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_vector_with_explicit_port() -> None:
    """Signing the same URL with :443 gives kvajT1Ptam85bY51eRf/AJRuM3w=."""
    url = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    assert compute_signature(url, PARAMS, TOKEN) == "kvajT1Ptam85bY51eRf/AJRuM3w="


def test_twilio_docs_vector() -> None:
    """Twilio's docs example (Caller and From +12349013030) signs to 0/KCTR6DLpKmkAf8muzZqo1nDgQ=."""
    params = dict(PARAMS, Caller="+12349013030", From="+12349013030")
    assert compute_signature(URL, params, TOKEN) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_pairs_and_mapping_sign_alike() -> None:
    """A sequence of pairs in any order signs the same as the mapping."""
    pairs = sorted(PARAMS.items(), reverse=True)
    assert compute_signature(URL, pairs, TOKEN) == compute_signature(URL, PARAMS, TOKEN)


def test_repeated_keys_are_sorted_and_deduplicated() -> None:
    """Repeated names contribute each distinct value once, in sorted order."""
    a = compute_signature(URL, [("MediaUrl", "b"), ("MediaUrl", "a"), ("MediaUrl", "a")], TOKEN)
    b = compute_signature(URL, {"MediaUrl": ["a", "b"]}, TOKEN)
    assert a == b


@pytest.mark.parametrize(
    ("url", "signature"),
    [
        (URL, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        (URL, "kvajT1Ptam85bY51eRf/AJRuM3w="),
        ("https://mycompany.com:443/myapp.php?foo=1&bar=2", "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        ("https://mycompany.com:443/myapp.php?foo=1&bar=2", "kvajT1Ptam85bY51eRf/AJRuM3w="),
    ],
)
def test_validation_accepts_url_with_or_without_default_port(url: str, signature: str) -> None:
    """Validation accepts the signature computed with or without the default port."""
    assert validate_signature(url, PARAMS, signature, TOKEN)


def test_validation_rejects_tampering() -> None:
    """A changed parameter, URL or token fails validation."""
    sig = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert not validate_signature(URL, dict(PARAMS, Digits="1235"), sig, TOKEN)
    assert not validate_signature(URL + "&x=1", PARAMS, sig, TOKEN)
    assert not validate_signature(URL, PARAMS, sig, "54321")
    assert not validate_signature(URL, PARAMS, "", TOKEN)


def test_sha256_algorithm_differs_and_validates() -> None:
    """HMAC-SHA256 signatures are supported and distinct from SHA1 ones."""
    sig = compute_signature(URL, PARAMS, TOKEN, algorithm="HMAC-SHA256")
    assert sig != "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert validate_signature(URL, PARAMS, sig, TOKEN, algorithm="HMAC_SHA256")
    with pytest.raises(ValueError, match="unsupported"):
        compute_signature(URL, PARAMS, TOKEN, algorithm="MD5")


def test_body_hash_vector() -> None:
    """The JSON body from Twilio's example hashes to the documented SHA-256."""
    assert compute_body_hash(BODY) == BODY_HASH
    assert validate_body_hash(BODY.encode(), BODY_HASH.upper())


def test_json_body_signature_vector() -> None:
    """A JSON webhook signs only the URL with bodySHA256, to a9nBmqA0ju/hNViExpshrM61xv4=."""
    url = f"{URL}&bodySHA256={BODY_HASH}"
    assert compute_signature(url, None, TOKEN) == "a9nBmqA0ju/hNViExpshrM61xv4="
    assert validate_json_signature(url, BODY, "a9nBmqA0ju/hNViExpshrM61xv4=", TOKEN)
    assert not validate_json_signature(url, BODY + " ", "a9nBmqA0ju/hNViExpshrM61xv4=", TOKEN)
    assert not validate_json_signature(URL, BODY, "a9nBmqA0ju/hNViExpshrM61xv4=", TOKEN)
