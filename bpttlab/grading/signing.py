"""Results a rerun may trust: each stored result carries an HMAC-SHA256 of its content.

The key is 32 random bytes in ``OUT/.grader-key``, created with mode 0600 by the first run (only the
teacher's user can read it, and no sandbox sees the output folder). A result whose signature is missing
or does not match (edited by hand, written by a student's process in a ``--no-sandbox`` run, copied from
another course's output) is not trusted: the grader regrades the notebook and says so.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

KEY_FILE = ".grader-key"
SIGNATURE = "signature"


def grader_key(out: Path) -> bytes:
    """The output folder's key, made on first use (readable by the grader's user only)."""
    path = out / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        try:
            key = bytes.fromhex(path.read_text(encoding="ascii").strip())
        except ValueError:
            key = b""
        if len(key) < 32:
            raise ValueError(f"{path} is not a key made by bpttlab grade; delete it (every stored result is "
                             "then regraded)") from None
        return key
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key.hex() + "\n")
    return key


def _digest(record: dict[str, Any], key: bytes) -> str:
    body = {k: v for k, v in record.items() if k != SIGNATURE}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def signed(record: dict[str, Any], key: bytes) -> dict[str, Any]:
    """``record`` with its signature."""
    return {**record, SIGNATURE: _digest(record, key)}


def authentic(record: Any, key: bytes) -> bool:
    """Whether ``record`` is a result this output folder's grader wrote, unchanged."""
    return (isinstance(record, dict) and isinstance(record.get(SIGNATURE), str)
            and hmac.compare_digest(record[SIGNATURE], _digest(record, key)))
