"""Install what the benchmark needs and the machine lacks: Debian's nginx and wrk, LiteLLM.

LiteLLM lives in its own virtualenv under ``tests/bench/.work`` (gitignored) so its hundreds
of dependencies never touch the project's venv. The version is pinned: 1.108.7 is the one
issue 6's reference figures were measured with, and newer 1.108.8+ releases' ``[proxy]``
extras pin ``litellm-proxy-extras`` versions that are not published on PyPI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

LITELLM_VERSION = "1.108.7"
PY_SPY_VERSION = "0.4.3"


def _say(message: str) -> None:
    print(f"[install] {message}", flush=True)


def ensure_debian_tools(tools: tuple[str, ...] = ("nginx", "wrk")) -> list[str]:
    """apt-get install the missing ``tools`` when root; return those still missing."""
    missing = [t for t in tools if not (shutil.which(t) or Path(f"/usr/sbin/{t}").exists())]
    if not missing:
        return []
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        _say(f"missing {', '.join(missing)} and cannot apt-get here: install them by hand")
        return missing
    _say(f"apt-get install -y {' '.join(missing)}")
    quiet = {
        "stdout": subprocess.DEVNULL,
        "env": {**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    }
    subprocess.run(["apt-get", "update", "-qq"], check=False, timeout=600, **quiet)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=False, timeout=900, **quiet)
    return [t for t in missing if not (shutil.which(t) or Path(f"/usr/sbin/{t}").exists())]


def _venv_version(python: Path, package: str) -> str | None:
    if not python.exists():
        return None
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    return out.stdout.strip() if out.returncode == 0 else None


def ensure_venv_package(venv: Path, requirement: str, package: str, version: str) -> Path | None:
    """A venv at ``venv`` holding ``package==version``; returns its bin dir, None on failure."""
    python = venv / "bin" / "python"
    if _venv_version(python, package) == version:
        return venv / "bin"
    _say(f"pip install {requirement!r} into {venv} (a few minutes the first time)")
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(python), "-m", "pip", "install", "-q", requirement]
    result = subprocess.run(pip, check=False, timeout=1200)
    if result.returncode != 0 or _venv_version(python, package) != version:
        _say(f"could not install {requirement}")
        return None
    return venv / "bin"


def ensure_litellm(work: Path) -> Path | None:
    """The ``litellm`` executable of the pinned LiteLLM proxy, or None."""
    requirement = f"litellm[proxy]=={LITELLM_VERSION}"
    bin_dir = ensure_venv_package(work / "litellm-venv", requirement, "litellm", LITELLM_VERSION)
    return bin_dir / "litellm" if bin_dir else None


def ensure_py_spy(work: Path) -> Path | None:
    requirement = f"py-spy=={PY_SPY_VERSION}"
    bin_dir = ensure_venv_package(work / "tools-venv", requirement, "py-spy", PY_SPY_VERSION)
    return bin_dir / "py-spy" if bin_dir else None
