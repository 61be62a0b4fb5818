"""Encryption keys and the codec server's bearer token for a test."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.codec import new_key

TOKEN = "codec-test-token-" + "x" * 24


@dataclass
class Keys:
    """A keys file and a token file (both 0600), and the key ids and keys in them."""

    keys_file: Path
    token_file: Path
    keys: dict[str, str]

    def settings(self, **options: Any) -> dict[str, Any]:
        """Project settings that turn the codec on."""
        return {"codec_keys_file": self.keys_file, **options}


def write_keys(directory: Path) -> Keys:
    """Two keys (k2 seals, k1 still opens) and a bearer token, written as an operator would."""
    directory.mkdir(parents=True, exist_ok=True)
    keys = {"k2": new_key(), "k1": new_key()}
    keys_file = directory / "codec-keys.toml"
    keys_file.write_text("".join(f'{key_id} = "{key}"\n' for key_id, key in keys.items()))
    keys_file.chmod(0o600)
    token_file = directory / "codec-token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    return Keys(keys_file, token_file, keys)
