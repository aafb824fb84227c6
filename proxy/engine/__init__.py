"""The engine: routing, attempts with retries and fallbacks, circuit breaking, pricing."""
