"""Service-account key files for the Vertex AI tests: a fresh RSA key per file, the token
endpoint pointed at the simulator, and the public key the fake token endpoint verifies with."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


@dataclass(frozen=True)
class ServiceAccount:
    path: Path
    email: str
    public_pem: str

    @property
    def account(self) -> tuple[str, str]:
        """What the simulator's ``vertex_accounts`` takes."""
        return self.email, self.public_pem


def write_key_file(path: Path, token_uri: str, name: str = "gateway") -> ServiceAccount:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    email = f"{name}@sim-project.iam.gserviceaccount.com"
    info = {
        "type": "service_account",
        "project_id": "sim-project",
        "private_key_id": "k-" + name,
        "private_key": private,
        "client_email": email,
        "client_id": "1234567890",
        "token_uri": token_uri,
    }
    path.write_text(json.dumps(info))
    return ServiceAccount(path, email, public)
