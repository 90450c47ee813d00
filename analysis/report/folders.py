"""Folders and files of a report set: a folder name per region (safe for paths and URLs, stable
across runs) and atomic writes.

The batch runner (``runner``), the data splitter (``data``), the export and the summaries all name
or write files here, so none of them has to import another for it.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from pathlib import Path
from typing import Any

#: The national report's folder, and the batch's working folder.
NATIONAL = "national"
BUILD_DIR = "_build"


#: A region code used as its folder name as it is: short, ASCII letters and digits, not a reserved name.
PLAIN_FOLDER = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.-]{0,39}")
RESERVED_FOLDERS = {NATIONAL, BUILD_DIR, "index", "static"}
#: What every folder name of a region matches (a plain code, or an ASCII slug and a hash).
FOLDER = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.-]{0,59}")


#: Latin letters that Unicode does not decompose into a base letter and a mark (ł is not l + a stroke).
_NO_DECOMPOSITION = str.maketrans({"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "đ": "d", "Đ": "D", "ß": "ss",
                                   "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ı": "i", "þ": "th", "ð": "d",
                                   # Cyrillic, by the common scientific-style romanisation (folder names only)
                                   **dict(zip("абвгдеёжзийклмнопрстуфхцчшщъыьэюяіїєґў",
                                              ["a", "b", "v", "g", "d", "e", "e", "zh", "z", "i", "i", "k", "l", "m",
                                               "n", "o", "p", "r", "s", "t", "u", "f", "kh", "ts", "ch", "sh", "shch",
                                               "", "y", "", "e", "yu", "ya", "i", "i", "e", "g", "u"]))})


def folder_name(code: Any) -> str:
    """A safe, stable folder name for a region code of any text (Cyrillic, spaces, ``/``, one digit).

    A plain ASCII code is its own folder ("31", "3101"); anything else becomes an ASCII slug of the
    code plus the first 10 hex digits of its SHA-256 ("moskva-3fa2c9e01b"), the same on every run.
    The page shows the name, escaped; the folder never carries a character a path or URL would read.
    """
    import unicodedata

    if not isinstance(code, str) or not code.strip():
        raise ValueError(f"a region code must be non-empty text, got {code!r}")
    if PLAIN_FOLDER.fullmatch(code) and code.lower() not in RESERVED_FOLDERS and not code.endswith("."):
        return code
    ascii_text = unicodedata.normalize("NFKD", code.lower().translate(_NO_DECOMPOSITION)).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^0-9A-Za-z]+", "-", ascii_text).strip("-").lower()[:40] or "region"
    return f"{slug}-{hashlib.sha256(code.encode('utf-8')).hexdigest()[:10]}"


def write_bytes_atomic(path: str | Path, raw: bytes) -> Path:
    """Write bytes to ``path`` through a temp file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A temp name no other writer uses, in the same folder (so the rename is atomic); created with the
    # umask's permissions, unlike mkstemp's 0600, because reports are published.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as out:
            out.write(raw)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_atomic(path: str | Path, text: str) -> Path:
    """Write text (UTF-8) to ``path`` through a temp file in the same folder and a rename."""
    return write_bytes_atomic(path, text.encode("utf-8"))
