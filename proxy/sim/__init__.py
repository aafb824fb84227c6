"""A simulated vendor upstream speaking the real OpenAI and Anthropic wire formats over loopback."""
