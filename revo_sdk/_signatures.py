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

import email.utils
import hashlib
import hmac
import json
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

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
