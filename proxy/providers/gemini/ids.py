"""Tool-call ids that carry what Gemini needs back on the next turn (MAPPING §7).

Gemini often sends a ``functionCall`` without an id, and Gemini 3 answers 400 when a
``thoughtSignature`` it issued is not returned with its part. The gateway keeps no state, and
OpenAI and Anthropic clients keep nothing but the tool-call id across turns, so the id carries
both: ``gid_<Gemini's id>`` when Gemini sent one (echoed as ``functionCall.id`` and
``functionResponse.id``), else a synthesized ``call_<response id>_<candidate>_<n>`` (``n`` the
call's position; a hash of the response id, candidate and first call when the response id is
missing or does not fit the id alphabet), made once per candidate, so the same answer gets the
same ids streamed or not and two answers in a conversation differ. Then the signature, in the
alphabet of Anthropic's ``tool_use`` ids so both SDKs keep it intact: ``__tb_`` and the
signature itself with ``+/`` read as ``-_`` and no padding (Google sends padded standard base64,
so this is one ``bytes.translate``), or, for any other string, ``__ts_`` and its UTF-8 in
base64url (the only form of earlier releases, still read).
"""

from __future__ import annotations

import binascii
import hashlib
import string
from dataclasses import dataclass

GEMINI_ID = "gid_"
SYNTHESIZED = "call_"
SIGNATURE = "__ts_"  # base64url of the signature's UTF-8: any string
BASE64 = "__tb_"  # a standard-base64 signature in the URL alphabet, unpadded
_MARK = "__t"  # what both signature markers start with
_SKIP = len(GEMINI_ID)
_STANDARD = string.ascii_letters + string.digits + "+/"
_URL_SAFE = (string.ascii_letters + string.digits + "-_").encode()
# Standard base64 to the URL alphabet in one pass; a byte that has no place in an unpadded
# standard base64 string (``-``, ``_``, ``=``, anything else) becomes 0, which marks it.
_TO_URL = bytes(
    {ord("+"): ord("-"), ord("/"): ord("_")}.get(b, b if chr(b) in _STANDARD else 0)
    for b in range(256)
)


@dataclass(frozen=True, slots=True)
class CallRef:
    """What a client's tool-call id says about the Gemini call it answers."""

    gemini_id: str | None
    signature: str | None


NOTHING = CallRef(None, None)


def stem(seed: tuple[str, int], name: str, arguments: bytes) -> str:
    """The stem of a candidate's synthesized ids, from ``seed`` (response id, candidate index):
    ``call_<response id>_<candidate>_`` when the response id fits the id alphabet (Gemini's do:
    base64url), else a hash of both and of the candidate's first call (so that answers without
    a response id differ too)."""
    response_id, candidate = seed
    readable = f"{SYNTHESIZED}{response_id}_{candidate}_"
    # Bytes outside the alphabet (non-ASCII ones too) survive the translate: refused.
    if response_id and _MARK not in readable and not readable.encode().translate(None, _URL_SAFE):
        return readable
    data = f"{response_id}/{candidate}\x00{name}\x00".encode() + arguments
    return f"{SYNTHESIZED}{hashlib.blake2b(data, digest_size=9).hexdigest()}_"


def pack(signature: str) -> str:
    """The signature's suffix: padded standard base64 (what Google sends: ``bytes`` in JSON) as
    it is, in the URL alphabet and unpadded; any other string base64url-encoded."""
    body = signature.rstrip("=")
    packed = body.encode().translate(_TO_URL)
    if 0 in packed or len(signature) % 4 or len(signature) - len(body) > 2:
        packed = binascii.b2a_base64(signature.encode(), newline=False).rstrip(b"=")
        return SIGNATURE + packed.replace(b"+", b"-").replace(b"/", b"_").decode()
    return BASE64 + packed.decode()


def decode(call_id: str | None) -> CallRef:
    """Read an id back; ids made elsewhere (another vendor, the client) carry nothing."""
    if not isinstance(call_id, str):
        return NOTHING
    at = call_id.find(_MARK)
    while at >= 0 and call_id[at + 3 : at + 5] not in ("s_", "b_"):
        at = call_id.find(_MARK, at + 3)
    if at < 0:
        gemini_id = call_id[_SKIP:] if call_id.startswith(GEMINI_ID) else None
        return CallRef(gemini_id, None) if gemini_id else NOTHING
    base, kind, packed = call_id[:at], call_id[at + 3], call_id[at + 5 :]
    gemini_id = base[_SKIP:] if base.startswith(GEMINI_ID) else None
    return CallRef(gemini_id or None, _unpack(kind, packed) if packed else None)


def _unpack(kind: str, packed: str) -> str | None:
    standard = packed.replace("-", "+").replace("_", "/") + "=" * (-len(packed) % 4)
    if kind == "b":
        return standard
    try:
        return binascii.a2b_base64(standard).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
