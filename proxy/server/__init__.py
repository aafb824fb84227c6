"""The HTTP server: aiohttp app, thin handlers, lifecycle."""
