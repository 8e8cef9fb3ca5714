"""Pure helpers that providers share: headers, signatures, bodies.

Webhook senders and API servers put what a provider needs in headers whose
letter case varies, in signatures that must be compared without leaking
timing, and in JSON or form bodies. These helpers read them the same careful
way for every provider. None of them performs I/O, and the functions meant for
untrusted input never raise on odd values (wrong types, non-ASCII text, odd
hex, bytes that are not UTF-8): they return ``None``, ``False`` or a
:class:`~revo_sdk.VerifyResult` with a reason instead. The body loaders raise
:class:`~revo_sdk.WebhookRejected` only.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import hashlib
import hmac
import json
import math
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from requests.structures import CaseInsensitiveDict

from ._exceptions import WebhookRejected
from ._provider import VERIFIED, VerifyResult

#: Digests a signature may use, with their size in bytes. The list is short on
#: purpose: no MD5, and no variable-length digests whose hex has no fixed size.
DIGEST_SIZES: Mapping[str, int] = {
    "sha1": 20,
    "sha256": 32,
    "sha384": 48,
    "sha512": 64,
}

_DIGITS = re.compile(r"[0-9]{1,18}")
_HEX = re.compile(r"[0-9a-fA-F]+")
_TOKEN = re.compile(r"[\x21-\x7e]+")  # visible ASCII, no spaces
_JSON_START = re.compile(rb"\s*[{\[]")

#: Most form fields a webhook body may have; more is not a real delivery.
MAX_FORM_FIELDS = 1000

#: How far a signed timestamp may be from now, either way, in seconds: Slack's
#: recommendation and the Standard Webhooks default alike.
TIMESTAMP_TOLERANCE = 300.0

#: Most signatures read from one Standard Webhooks header; a real sender
#: lists one per active secret, so a long list is not worth the work.
MAX_SIGNATURES = 16

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_BASE64 = re.compile(r"[A-Za-z0-9+/\-_]+={0,2}")


# -- headers ---------------------------------------------------------------


def header_value(headers: Mapping[Any, Any] | None, name: str) -> str | None:
    """The value of header ``name`` in any letter case, stripped.

    Works with case-insensitive mappings (``requests``' headers) and plain
    dicts alike. Returns ``None`` when the header is missing or empty, or its
    value is neither text nor bytes (bytes are read as Latin-1, as WSGI does).

    :param headers: the request or response headers.
    :param name: the header name, in any case.
    """
    if headers is None:
        return None
    try:
        value = headers.get(name)
        if value is None:
            wanted = name.lower()
            for key, candidate in headers.items():
                if isinstance(key, str) and key.lower() == wanted:
                    value = candidate
                    break
    except Exception:  # any misbehaving mapping reads as "no such header"
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str):
        return None
    return value.strip() or None


def header_int(headers: Mapping[Any, Any] | None, name: str) -> int | None:
    """Header ``name`` as a non-negative integer of plain ASCII digits.

    ``int()`` alone would also accept ``"1_000"`` and non-ASCII digits; a
    header holding anything but ``0-9`` reads as ``None``.
    """
    value = header_value(headers, name)
    if value is None or not _DIGITS.fullmatch(value):
        return None
    return int(value)


def header_date(headers: Mapping[Any, Any] | None, name: str = "Date") -> float | None:
    """An HTTP-date header as epoch seconds, or ``None`` if absent or garbled."""
    value = header_value(headers, name)
    if value is None:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def parse_iso8601(value: str | None) -> float | None:
    """An ISO-8601 timestamp such as ``2024-05-20T10:00Z`` as epoch seconds.

    A trailing ``Z`` means UTC and so does a missing offset. Anything that
    does not parse reads as ``None``.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text[-1] in "Zz":
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    try:
        return when.timestamp()
    except (OverflowError, ValueError):
        return None


def is_token(value: object, max_length: int = 200) -> bool:
    """True for visible ASCII text without spaces, 1 to ``max_length`` long.

    Used for event names and delivery ids taken from the network before they
    become queue keys, log fields and metric labels.
    """
    return (
        isinstance(value, str)
        and 0 < len(value) <= max_length
        and _TOKEN.fullmatch(value) is not None
    )


# -- signatures -----------------------------------------------------------


def split_signature(value: str | None) -> tuple[str, str] | None:
    """``"sha256=ab12..."`` as ``("sha256", "ab12...")``; ``None`` without ``=``.

    The scheme is lower-cased; neither part is otherwise checked.
    """
    if not isinstance(value, str):
        return None
    scheme, sep, rest = value.partition("=")
    if not sep:
        return None
    return scheme.strip().lower(), rest.strip()


def hmac_hex(secret: str | bytes, msg: bytes, digest: str = "sha256") -> str:
    """The lower-case hex HMAC of ``msg`` keyed with ``secret``.

    A text secret is encoded as UTF-8.

    :raises ValueError: when ``digest`` is not one of :data:`DIGEST_SIZES`.
    """
    if digest not in DIGEST_SIZES:
        raise ValueError(
            f"unsupported digest {digest!r}; use one of {list(DIGEST_SIZES)}"
        )
    return hmac.digest(_key(secret), msg, digest).hex()


def check_hmac(
    secrets: Iterable[str | bytes] | str | bytes,
    msg: bytes,
    given_hex: object,
    digest: str = "sha256",
) -> VerifyResult:
    """Check a hex HMAC signature against every configured secret.

    Each secret is tried, and all of them always are, so a secret can be
    rotated without losing deliveries and the time taken does not tell which
    one matched. The comparison is constant-time (:func:`hmac.compare_digest`).
    Empty secrets are ignored: an empty key would let anyone sign.

    :param secrets: the accepted secrets (a single one may be passed alone).
    :param msg: exactly the bytes the sender signed.
    :param given_hex: the hex digest taken from the request.
    :param digest: the hash algorithm, one of :data:`DIGEST_SIZES`.
    :returns: ``ok``, or the reason ``no_secret``, ``bad_format`` or
        ``mismatch``; never raises.
    """
    keys = usable_secrets(secrets)
    if not keys:
        return VerifyResult(False, "no_secret")
    size = DIGEST_SIZES.get(digest) if isinstance(digest, str) else None
    if (
        size is None
        or not isinstance(given_hex, str)
        or len(given_hex) != 2 * size
        or not _HEX.fullmatch(given_hex)
    ):
        return VerifyResult(False, "bad_format")
    message = as_bytes(msg)
    if message is None:
        return VerifyResult(False, "bad_format")

    given = bytes.fromhex(given_hex)
    matched = False
    for key in keys:
        # No early exit: every secret costs the same whatever matched.
        matched |= hmac.compare_digest(hmac.digest(key, message, digest), given)
    return VERIFIED if matched else VerifyResult(False, "mismatch")


def verify_hmac_hex(
    secrets: Iterable[str | bytes] | str | bytes,
    msg: bytes,
    given_hex: object,
    digest: str = "sha256",
) -> bool:
    """True when ``given_hex`` is the HMAC of ``msg`` under any of ``secrets``.

    The boolean form of :func:`check_hmac`; never raises.
    """
    return check_hmac(secrets, msg, given_hex, digest).ok


def usable_secrets(secrets: object) -> list[bytes]:
    """The non-empty secrets of ``secrets`` as keys; odd entries are skipped."""
    if isinstance(secrets, (str, bytes)):
        secrets = (secrets,)
    try:
        candidates = list(secrets)  # type: ignore[call-overload]  # checked at runtime
    except TypeError:
        return []
    keys = []
    for secret in candidates:
        if isinstance(secret, (str, bytes)) and secret:
            try:
                keys.append(_key(secret))
            except UnicodeEncodeError:
                continue
    return keys


def _key(secret: str | bytes) -> bytes:
    if isinstance(secret, str):
        # surrogateescape gives back the bytes of an environment variable
        # that was not valid UTF-8.
        return secret.encode("utf-8", "surrogateescape")
    return secret


# -- schemes ----------------------------------------------------------------
#
# One function per signing scheme. Each takes the request headers (any
# mapping, names in any case), the raw body exactly as received, and the
# accepted secrets; each returns a VerifyResult and never raises.


def verify_github(
    headers: Mapping[Any, Any] | None,
    body: object,
    secrets: Iterable[str | bytes] | str | bytes,
    *,
    allow_sha1: bool = False,
) -> VerifyResult:
    """Check GitHub's ``X-Hub-Signature-256: sha256=<hex>`` over ``body``.

    GitHub also sends the SHA-1 ``X-Hub-Signature``; it is read only when
    ``allow_sha1`` is true *and* the SHA-256 header is absent (some older
    GitHub Enterprise servers send only SHA-1). Accepting it by default would
    let a forger pick the weaker digest.

    :returns: ``ok`` or ``no_secret``, ``missing_header``, ``bad_format``,
        ``mismatch``.
    """
    if not usable_secrets(secrets):
        return VerifyResult(False, "no_secret")
    signature = header_value(headers, "X-Hub-Signature-256")
    digest = "sha256"
    if signature is None and allow_sha1:
        signature = header_value(headers, "X-Hub-Signature")
        digest = "sha1"
    if signature is None:
        return VerifyResult(False, "missing_header")
    parts = split_signature(signature)
    raw = as_bytes(body)
    if parts is None or parts[0] != digest or raw is None:
        return VerifyResult(False, "bad_format")
    return check_hmac(secrets, raw, parts[1], digest)


def verify_slack(
    headers: Mapping[Any, Any] | None,
    body: object,
    secrets: Iterable[str | bytes] | str | bytes,
    *,
    now: float,
    tolerance: float = TIMESTAMP_TOLERANCE,
) -> VerifyResult:
    """Check Slack's ``X-Slack-Signature: v0=<hex>`` over ``v0:<ts>:<body>``.

    ``X-Slack-Request-Timestamp`` must be whole seconds (anything else is
    ``bad_format``) within ``tolerance`` of ``now``: older is
    ``stale_timestamp`` (a replay), newer ``future_timestamp``.

    :param now: the current epoch time (injectable for tests).
    """
    if not usable_secrets(secrets):
        return VerifyResult(False, "no_secret")
    signature = header_value(headers, "X-Slack-Signature")
    timestamp = header_value(headers, "X-Slack-Request-Timestamp")
    if signature is None or timestamp is None:
        return VerifyResult(False, "missing_header")
    parts = split_signature(signature)
    raw = as_bytes(body)
    if parts is None or parts[0] != "v0" or raw is None:
        return VerifyResult(False, "bad_format")
    window = _check_window(timestamp, now, tolerance)
    if window is not None:
        return window
    base = b"v0:" + timestamp.encode("ascii") + b":" + raw
    return check_hmac(secrets, base, parts[1], "sha256")


def verify_jira(
    headers: Mapping[Any, Any] | None,
    body: object,
    secrets: Iterable[str | bytes] | str | bytes,
    *,
    methods: Iterable[str] = ("sha256", "sha1", "sha512"),
) -> VerifyResult:
    """Check Jira's ``X-Hub-Signature: <method>=<hex>`` over ``body``.

    The method written in the value chooses the digest (Jira signs with
    ``sha256``), not the header name; methods outside ``methods`` are
    ``bad_format``.
    """
    if not usable_secrets(secrets):
        return VerifyResult(False, "no_secret")
    signature = header_value(headers, "X-Hub-Signature")
    if signature is None:
        return VerifyResult(False, "missing_header")
    parts = split_signature(signature)
    raw = as_bytes(body)
    allowed = {m.lower() for m in methods if isinstance(m, str)}
    if parts is None or parts[0] not in allowed or raw is None:
        return VerifyResult(False, "bad_format")
    return check_hmac(secrets, raw, parts[1], parts[0])


#: Header names of the Standard Webhooks scheme, then Svix's older aliases.
STANDARD_HEADERS = (
    ("webhook-id", "webhook-timestamp", "webhook-signature"),
    ("svix-id", "svix-timestamp", "svix-signature"),
)


def standard_webhooks_key(secret: object) -> bytes | None:
    """The HMAC key of a Standard Webhooks secret, or ``None`` if unusable.

    A secret is base64 with an optional ``whsec_`` prefix; missing ``=``
    padding is tolerated, and so is the URL-safe alphabet. Bytes are used
    as the key as they are.
    """
    if isinstance(secret, (bytes, bytearray)):
        return bytes(secret) or None
    if not isinstance(secret, str):
        return None
    text = secret.strip()
    text = text.removeprefix("whsec_")
    if not text or not _BASE64.fullmatch(text):
        return None
    text = text.rstrip("=").replace("-", "+").replace("_", "/")
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return key or None


def verify_standard_webhooks(
    headers: Mapping[Any, Any] | None,
    body: object,
    secrets: Iterable[str | bytes] | str | bytes,
    *,
    now: float,
    tolerance: float = TIMESTAMP_TOLERANCE,
) -> VerifyResult:
    """Check a `Standard Webhooks <https://www.standardwebhooks.com>`_ signature.

    Reads ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature``
    (or the ``svix-*`` aliases when the first is absent). The signature
    header lists space-separated ``v1,<base64>`` entries (one per secret the
    sender holds); any entry matching any secret is enough. Each entry is an
    HMAC-SHA256 of ``<id>.<timestamp>.<body>`` keyed with the decoded secret
    (see :func:`standard_webhooks_key`). Entries of other versions (such as
    asymmetric ``v1a``) are ignored. Every secret is compared with every
    entry, in constant time per comparison and without an early exit.

    :param now: the current epoch time (injectable for tests).
    :param tolerance: seconds the timestamp may differ from ``now``.
    """
    keys = _standard_keys(secrets)
    if not keys:
        return VerifyResult(False, "no_secret")
    names = STANDARD_HEADERS[0]
    if header_value(headers, names[2]) is None:
        names = STANDARD_HEADERS[1]
    msg_id, timestamp, signature = (header_value(headers, n) for n in names)
    if msg_id is None or timestamp is None or signature is None:
        return VerifyResult(False, "missing_header")
    raw = as_bytes(body)
    if raw is None or not is_token(msg_id, 256):
        return VerifyResult(False, "bad_format")
    window = _check_window(timestamp, now, tolerance)
    if window is not None:
        return window

    given = _v1_signatures(signature)
    if not given:
        return VerifyResult(False, "bad_format")
    signed = msg_id.encode("ascii") + b"." + timestamp.encode("ascii") + b"." + raw
    matched = False
    for key in keys:
        expected = hmac.digest(key, signed, "sha256")
        for candidate in given:
            matched |= hmac.compare_digest(expected, candidate)
    return VERIFIED if matched else VerifyResult(False, "mismatch")


def _standard_keys(secrets: object) -> list[bytes]:
    if isinstance(secrets, (str, bytes)):
        secrets = (secrets,)
    try:
        candidates = list(secrets)  # type: ignore[call-overload]  # checked at runtime
    except TypeError:
        return []
    keys = (standard_webhooks_key(secret) for secret in candidates)
    return [key for key in keys if key is not None]


def _v1_signatures(value: str) -> list[bytes]:
    found: list[bytes] = []
    for entry in value.split()[:MAX_SIGNATURES]:
        version, sep, encoded = entry.partition(",")
        if version != "v1" or not sep or not _BASE64.fullmatch(encoded):
            continue
        try:
            decoded = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if len(decoded) == DIGEST_SIZES["sha256"]:
            found.append(decoded)
    return found


def _check_window(timestamp: str, now: object, tolerance: float) -> VerifyResult | None:
    """``None`` when ``timestamp`` is whole seconds within ``tolerance`` of now."""
    if not _TIMESTAMP.fullmatch(timestamp):
        return VerifyResult(False, "bad_format")
    if not isinstance(now, (int, float)) or not math.isfinite(now):
        return VerifyResult(False, "stale_timestamp")
    sent = int(timestamp)
    if sent < now - tolerance:
        return VerifyResult(False, "stale_timestamp")
    if sent > now + tolerance:
        return VerifyResult(False, "future_timestamp")
    return None


# -- bodies ---------------------------------------------------------------


def as_bytes(body: object) -> bytes | None:
    """``body`` as bytes if it is bytes-like, else ``None``."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, (bytearray, memoryview)):
        return bytes(body)
    return None


def body_fingerprint(body: bytes, *extra: str | bytes) -> str:
    """A SHA-256 hex digest of ``body`` and ``extra`` parts.

    Each part is length-prefixed, so ``("ab", "c")`` and ``("a", "bc")``
    differ. Used as a delivery id when the sender gives none.
    """
    digest = hashlib.sha256()
    for part in (body, *extra):
        data = part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def media_type(content_type: object, headers: Mapping[Any, Any] | None = None) -> str:
    """The lower-case media type of ``content_type``, else of the headers.

    ``"application/json; charset=utf-8"`` gives ``"application/json"``; an
    unusable value gives ``""``.
    """
    value = content_type if isinstance(content_type, str) and content_type else None
    if value is None:
        value = header_value(headers, "Content-Type")
    if value is None:
        return ""
    return value.split(";", 1)[0].strip().lower()


def looks_like_json(body: bytes) -> bool:
    """True when ``body`` starts, after white space, with ``{`` or ``[``."""
    return _JSON_START.match(body) is not None


def load_json_object(
    body: bytes | str, *, reason: str = "malformed_body"
) -> dict[str, Any]:
    """Decode a JSON object, or raise :class:`~revo_sdk.WebhookRejected` (400).

    Bytes may be UTF-8, -16 or -32, as :func:`json.loads` detects them.
    Anything else than an object (a list, a number) is rejected too.
    """
    try:
        value = json.loads(body)
    except (ValueError, TypeError, RecursionError):
        # ValueError covers bad JSON, bad UTF-8 and over-long integers;
        # RecursionError a body nested too deeply to decode.
        raise WebhookRejected(400, reason) from None
    if not isinstance(value, dict):
        raise WebhookRejected(400, reason)
    return value


def load_form(body: bytes) -> dict[str, str]:
    """Decode an ``application/x-www-form-urlencoded`` body.

    Blank values are kept (``text=`` matters to a slash command); the first of
    repeated fields wins. Raises :class:`~revo_sdk.WebhookRejected` (400,
    ``malformed_body``) on bytes that are not UTF-8, on invalid
    percent-escapes and on more than :data:`MAX_FORM_FIELDS` fields.
    """
    try:
        text = body.decode("utf-8")
        pairs = urllib.parse.parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=True,
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (ValueError, AttributeError):
        # UnicodeDecodeError is a ValueError; AttributeError: not bytes.
        raise WebhookRejected(400, "malformed_body") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        form.setdefault(key, value)
    return form


#: The quota headers GitHub and Jira send (lower-case names).
QUOTA_HEADERS = ("x-ratelimit-remaining", "x-ratelimit-reset", "x-ratelimit-limit")


def lacks_headers(headers: Mapping[str, str], names: Iterable[str]) -> bool:
    """True when case-insensitive ``headers`` hold none of ``names`` (given in
    lower case); ``False`` (look closer) for any other kind of mapping.

    A fast path for the common response without quota headers: the storage
    of requests' CaseInsensitiveDict is keyed by lower-case name, while ``in``
    on the mapping itself would raise and catch a KeyError per absent name.
    """
    if not isinstance(headers, CaseInsensitiveDict):
        return False
    store = getattr(headers, "_store", None)
    if type(store) is not dict:
        store = {name.lower(): None for name in headers}
    return not any(name in store for name in names)
