"""The vendor registry: a provider's ``type`` in the config names one of these.

Adding a vendor is one module implementing :class:`proxy.providers.base.Vendor` (and, when its
wire format is not OpenAI's, the translation to and from it) plus one line here.
"""

from __future__ import annotations

from proxy.providers import anthropic, azure, cohere, gemini, openai, openai_compatible
from proxy.providers.base import Vendor

VENDORS: dict[str, Vendor] = {
    "openai": openai.VENDOR,
    "anthropic": anthropic.VENDOR,
    "azure_openai": azure.VENDOR,
    "openai_compatible": openai_compatible.VENDOR,
    "cohere": cohere.VENDOR,
    "gemini": gemini.GEMINI,
    "vertex_ai": gemini.VERTEX,
}


def vendor_for(provider_type: str) -> Vendor:
    return VENDORS[provider_type]
