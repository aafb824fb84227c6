"""Tool-call ids that carry what Gemini needs back on the next turn (MAPPING §7).

Gemini often sends a ``functionCall`` without an id, and Gemini 3 answers 400 when a
``thoughtSignature`` it issued is not returned with its part. OpenAI and Anthropic clients keep
nothing but the tool-call id across turns, so the id carries both: ``gid_<Gemini's id>`` when
Gemini sent one (echoed as ``functionCall.id``/``functionResponse.id``), else a synthesized
``call_<hash>`` that is stable for the same response; then ``__ts_`` and the signature in
base64url (the alphabet of Anthropic's ``tool_use`` ids, so both SDKs keep it intact).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

GEMINI_ID = "gid_"
SYNTHESIZED = "call_"
SIGNATURE = "__ts_"


@dataclass(frozen=True, slots=True)
class CallRef:
    """What a client's tool-call id says about the Gemini call it answers."""

    gemini_id: str | None
    signature: str | None


def synthesize(seed: str, index: int, name: str) -> str:
    """A stable id for a call Gemini sent without one: same response, same id."""
    digest = hashlib.blake2b(f"{seed}\x00{index}\x00{name}".encode(), digest_size=12)
    return SYNTHESIZED + digest.hexdigest()


def encode(gemini_id: str | None, signature: str | None, seed: str, index: int, name: str) -> str:
    """The client-facing id of one ``functionCall`` (``seed``, ``index`` and ``name`` make the
    synthesized id when Gemini sent none)."""
    base = GEMINI_ID + gemini_id if gemini_id else synthesize(seed, index, name)
    if not signature:
        return base
    packed = base64.b64encode(signature.encode(), b"-_").rstrip(b"=").decode()
    return f"{base}{SIGNATURE}{packed}"


def decode(call_id: str | None) -> CallRef:
    """Read an id back; ids made elsewhere (another vendor, the client) carry nothing."""
    if not isinstance(call_id, str):
        return CallRef(None, None)
    base, _, packed = call_id.partition(SIGNATURE)
    signature = None
    if packed:
        try:
            signature = base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4)).decode()
        except (ValueError, UnicodeDecodeError):
            signature = None
    gemini_id = base[len(GEMINI_ID) :] if base.startswith(GEMINI_ID) else None
    return CallRef(gemini_id or None, signature)
