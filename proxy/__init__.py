"""llm-edge-agent: a localhost sidecar LLM gateway."""

__version__ = "0.1.0"
