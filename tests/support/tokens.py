"""Decision signatures made by hand, the way any client (not only `airlock sign`) could make one.

The tests choose every claim themselves (an issue time long ago, a name with two `@`, a spelling
of someone's name), so the worker's checks are tried on exactly what an attacker would send.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from workflows.identity import ALGORITHM, TOKEN_TYPE, b64url, key_id


def signed_token(key: Ed25519PrivateKey, *, iat: datetime, exp: datetime, **claims: Any) -> str:
    """A compact JWS by `key` over `claims` (plus `aud`, `iat`, `exp` and a fresh `jti`)."""
    body_claims = {
        "aud": "airlock",
        **claims,
        "iat": int(iat.timestamp()),
        "exp": int(exp.timestamp()),
        "jti": secrets.token_hex(16),
    }
    header = {"alg": ALGORITHM, "kid": key_id(key.public_key().public_bytes_raw()), "typ": TOKEN_TYPE}
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(body_claims).encode())
    return f"{head}.{body}.{b64url(key.sign(f'{head}.{body}'.encode()))}"
