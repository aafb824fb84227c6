"""Locate data files that ship inside the wheel (``proxy/_data``) or sit in a source checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_INSTALLED = _PACKAGE / "_data"
_CHECKOUT = _PACKAGE.parent


def schema_path(name: str) -> Path:
    """Path of ``schema/<name>``: inside an installed wheel, else the repository's ``schema/``."""
    installed = _INSTALLED / "schema" / name
    return installed if installed.exists() else _CHECKOUT / "schema" / name


def default_config_path() -> Path:
    """The shipped example ``config.yaml``."""
    installed = _INSTALLED / "config.yaml"
    return installed if installed.exists() else _CHECKOUT / "config.yaml"
