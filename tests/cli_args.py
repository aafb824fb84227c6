"""Reading command-line arguments out of manifests (Dockerfile CMD, pod args, compose)."""

from __future__ import annotations


def option(args: list[str], flag: str, default: str | None = None) -> str | None:
    """The value of ``--flag VALUE`` or ``--flag=VALUE`` in an argument list."""
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return default
