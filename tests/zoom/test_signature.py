"""chatopsbot.zoom.signature: Zoom's x-zm-signature scheme and the URL-validation answer."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from chatopsbot.zoom.signature import (
    MAX_SKEW_SECONDS,
    SignatureError,
    sign,
    url_validation_answer,
    verify,
)

SECRET = "zoom-secret-token"
TS = "1700000000"
NOW = 1700000000.0
BODY = b'{"event":"bot_notification"}'
# openssl: printf '%s' 'v0:1700000000:{"event":"bot_notification"}' \
#            | openssl dgst -sha256 -hmac zoom-secret-token
SIGNATURE = "v0=5c14418c26ddb508806adda29fe112ebaa87822e3ebad3120a1b947a500d2ca4"


def refusal(secret, timestamp, signature, body=BODY, now=NOW) -> str:
    with pytest.raises(SignatureError) as info:
        verify(secret, timestamp, signature, body, now)
    return str(info.value)


def test_sign_matches_an_independently_computed_hmac():
    assert sign(SECRET, TS, BODY) == SIGNATURE


def test_sign_covers_version_timestamp_and_raw_body():
    expected = hmac.new(SECRET.encode(), b"v0:42:raw \xff bytes", hashlib.sha256).hexdigest()
    assert sign(SECRET, "42", b"raw \xff bytes") == "v0=" + expected


def test_sign_of_an_empty_body():
    expected = hmac.new(SECRET.encode(), b"v0:1:", hashlib.sha256).hexdigest()
    assert sign(SECRET, "1", b"") == "v0=" + expected


def test_the_allowed_skew_is_five_minutes():
    assert MAX_SKEW_SECONDS == 300


def test_verify_accepts_a_fresh_correctly_signed_body():
    verify(SECRET, TS, SIGNATURE, BODY, NOW)  # no SignatureError


@pytest.mark.parametrize("offset", [-300.0, -299.5, -1.0, 0.0, 0.999, 1.0, 299.0, 300.0])
def test_verify_accepts_timestamps_up_to_300_seconds_either_way(offset):
    verify(SECRET, TS, SIGNATURE, BODY, NOW + offset)  # no SignatureError


@pytest.mark.parametrize(
    ("offset", "message"),
    [
        (301.0, "timestamp 1700000000 is 301 s away from now"),
        (-301.0, "timestamp 1700000000 is -301 s away from now"),
        (300.5, "timestamp 1700000000 is 300 s away from now"),
        (-300.25, "timestamp 1700000000 is -300 s away from now"),
        (86400.0, "timestamp 1700000000 is 86400 s away from now"),
        (-1700000000.0, "timestamp 1700000000 is -1700000000 s away from now"),
    ],
)
def test_verify_refuses_stale_or_future_timestamps(offset, message):
    assert refusal(SECRET, TS, SIGNATURE, now=NOW + offset) == message


def test_a_stale_timestamp_is_refused_even_with_a_matching_signature():
    old = "1699999000"
    assert refusal(SECRET, old, sign(SECRET, old, BODY)) == (
        "timestamp 1699999000 is 1000 s away from now"
    )


@pytest.mark.parametrize("timestamp", [None, ""])
def test_verify_refuses_a_missing_timestamp(timestamp):
    assert refusal(SECRET, timestamp, SIGNATURE) == "missing x-zm-request-timestamp header"


@pytest.mark.parametrize("signature", [None, ""])
def test_verify_refuses_a_missing_signature(signature):
    assert refusal(SECRET, TS, signature) == "missing x-zm-signature header"


def test_the_timestamp_is_checked_before_the_signature():
    assert refusal(SECRET, None, None) == "missing x-zm-request-timestamp header"


@pytest.mark.parametrize(
    ("timestamp", "message"),
    [
        ("soon", "x-zm-request-timestamp is not a number: 'soon'"),
        ("1700000000.0", "x-zm-request-timestamp is not a number: '1700000000.0'"),
        ("0x65", "x-zm-request-timestamp is not a number: '0x65'"),
        ("12 34", "x-zm-request-timestamp is not a number: '12 34'"),
        ("x" * 100, f"x-zm-request-timestamp is not a number: {'x' * 40!r}"),
    ],
)
def test_verify_refuses_a_non_numeric_timestamp(timestamp, message):
    assert refusal(SECRET, timestamp, SIGNATURE) == message


def test_verify_refuses_a_signature_made_with_another_secret():
    forged = sign("another-secret", TS, BODY)
    assert refusal(SECRET, TS, forged) == "signature does not match"


@pytest.mark.parametrize(
    "body",
    [
        b'{"event":"bot_notification" }',
        b'{"event":"bot_notificatioN"}',
        b'{"event":"bot_notification"}\n',
        b"",
    ],
)
def test_verify_refuses_a_tampered_body(body):
    assert refusal(SECRET, TS, SIGNATURE, body=body) == "signature does not match"


def test_verify_refuses_a_signature_replayed_with_a_new_timestamp():
    # The signature covers the timestamp: moving it forward to look fresh breaks the match.
    assert refusal(SECRET, "1700000001", SIGNATURE) == "signature does not match"


@pytest.mark.parametrize(
    "signature",
    [
        SIGNATURE.removeprefix("v0="),
        "v1=" + SIGNATURE.removeprefix("v0="),
        SIGNATURE.upper(),
        SIGNATURE + "0",
        SIGNATURE[:-1],
        "v0=",
    ],
)
def test_verify_refuses_near_miss_signatures(signature):
    assert refusal(SECRET, TS, signature) == "signature does not match"


@pytest.mark.parametrize("secret", ["", None])
def test_an_empty_secret_fails_closed(secret):
    # With an empty key anyone could compute the signature: refuse even a "valid" one.
    signature = sign("", TS, BODY)
    assert refusal(secret, TS, signature) == "no secret token configured"


def test_an_empty_secret_is_reported_before_anything_else():
    assert refusal("", None, None, body=b"", now=0.0) == "no secret token configured"


@pytest.mark.parametrize(
    "signature",
    [
        "v0=é" + "0" * 63,
        "v0=" + "\u2603" * 64,
        "v0=\udcff\udcfe",  # what surrogateescape makes of undecodable header bytes
        "\x00",
        "v0=\U0001f600",
    ],
)
def test_a_non_ascii_signature_is_a_mismatch_not_a_crash(signature):
    assert refusal(SECRET, TS, signature) == "signature does not match"


def test_a_non_ascii_secret_is_encoded_as_utf8():
    expected = hmac.new("sécret".encode(), b"v0:" + TS.encode() + b":" + BODY, hashlib.sha256)
    signature = sign("sécret", TS, BODY)
    assert signature == "v0=" + expected.hexdigest()
    verify("sécret", TS, signature, BODY, NOW)  # no SignatureError


def test_url_validation_answer_matches_a_hand_computed_hmac():
    # openssl: printf '%s' qgg8vlvZRS6UYooatFL8Aw | openssl dgst -sha256 -hmac zoom-secret-token
    assert url_validation_answer(SECRET, "qgg8vlvZRS6UYooatFL8Aw") == {
        "plainToken": "qgg8vlvZRS6UYooatFL8Aw",
        "encryptedToken": "d9e0d764a78494688ba3f2d5c0ed4ca311394b4834d959759213424d2df961e3",
    }


def test_url_validation_answer_with_a_non_ascii_secret():
    # openssl: printf '%s' tok | openssl dgst -sha256 -hmac sécret   (UTF-8 terminal)
    assert url_validation_answer("sécret", "tok") == {
        "plainToken": "tok",
        "encryptedToken": "846e1262293d65c9936149e259f70bf0fdcdecbd57427e59af93de668bb2ac9a",
    }


def test_url_validation_answer_depends_on_the_secret():
    first = url_validation_answer("one", "token")["encryptedToken"]
    second = url_validation_answer("two", "token")["encryptedToken"]
    assert first != second
    assert len(first) == 64
    assert first == hmac.new(b"one", b"token", hashlib.sha256).hexdigest()
