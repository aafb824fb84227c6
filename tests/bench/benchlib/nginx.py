"""Render the nginx configs (fake upstream, reverse proxy) from ``tests/bench/templates``.

The fake upstream serves the canned bodies with ``return 200 '...'`` so nginx answers from
memory: nginx's static module refuses POST, and a request-body switch is not possible in
plain nginx, so streams live under their own path prefix (``/stream/v1/...``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from benchlib.bodies import ROUTES, responses

_PIECE = 2000  # bytes of body per nginx string, well under its 4 KB token cap
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def quote(body: bytes) -> str:
    """``body`` as a single-quoted nginx string that nginx turns back into the same bytes.

    nginx unescapes ``\\'`` and ``\\\\`` inside quotes and expands ``$name``; the canned
    bodies never contain ``$``, and we refuse rather than emit a body nginx would change.
    """
    text = body.decode()
    if "$" in text:
        raise ValueError("a canned body for nginx must not contain '$' (nginx variables)")
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _locations() -> str:
    """One exact-match location per route; a body is assembled from ``set`` pieces because
    nginx caps one config token at 4 KB (the 50-chunk streams are 7-17 KB)."""
    canned = responses()
    blocks = []
    for r, (path, (name, content_type)) in enumerate(ROUTES.items()):
        body = canned[name]
        pieces = [body[i : i + _PIECE] for i in range(0, len(body), _PIECE)]
        sets = "".join(
            f"            set $b{r}_{j} {quote(piece)};\n" for j, piece in enumerate(pieces)
        )
        value = "".join(f"${{b{r}_{j}}}" for j in range(len(pieces)))
        blocks.append(
            f"        location = {path} {{\n"
            f'            default_type "{content_type}";\n'
            f"            add_header x-request-id req_bench_0001;\n"
            f"{sets}"
            f'            return 200 "{value}";\n'
            f"        }}"
        )
    return "\n".join(blocks)


def render(template: str, work: Path, **values: object) -> str:
    text = (TEMPLATES / template).read_text()
    user = "user root;" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""
    replacements = {"USER": user, "WORK": str(work), **{k: str(v) for k, v in values.items()}}
    for key, value in replacements.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def write_upstream_conf(work: Path, port: int) -> Path:
    """The fake upstream's config, ready for ``nginx -p WORK -c PATH``."""
    (work / "nginx-tmp").mkdir(parents=True, exist_ok=True)
    path = work / "nginx-upstream.conf"
    path.write_text(render("nginx-upstream.conf.tmpl", work, PORT=port, LOCATIONS=_locations()))
    return path


def write_proxy_conf(work: Path, port: int, upstream_port: int) -> Path:
    (work / "nginx-tmp").mkdir(parents=True, exist_ok=True)
    path = work / "nginx-proxy.conf"
    conf = render("nginx-proxy.conf.tmpl", work, PORT=port, UPSTREAM_PORT=upstream_port)
    path.write_text(conf)
    return path


def command(conf: Path, work: Path) -> list[str]:
    binary = nginx_binary()
    if binary is None:
        raise FileNotFoundError("nginx is not installed")
    return [
        binary,
        "-p",
        str(work),
        "-e",
        str(work / "logs" / "nginx-startup.log"),
        "-c",
        str(conf),
    ]
