"""Stable short hashes of JSON-able values: recipe identities that survive renames and restarts."""

from __future__ import annotations

import hashlib
import json


def stable_hash(value: object, length: int = 12) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:length]
