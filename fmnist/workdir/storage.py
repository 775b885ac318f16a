"""Files in a workdir on any filesystem TensorFlow knows (local paths, gs://, ram://, ...), through `tf.io.gfile`.

A workdir is a string: a local path (made absolute) or a URL. `join` builds paths in it; JSON files are written
atomically where the filesystem allows (a temporary file renamed over the target: atomic on local filesystems; on
GCS an object appears whole or not at all, and the rename is a copy and a delete).
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import uuid
from pathlib import Path

import tensorflow as tf

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def is_url(path: str | os.PathLike) -> bool:
    return bool(_URL.match(str(path)))


def normalize(workdir: str | os.PathLike) -> str:
    """A local path made absolute (~ expanded), or a URL without a trailing slash."""
    workdir = str(workdir)
    if is_url(workdir):
        return workdir.rstrip("/")
    return str(Path(workdir).expanduser().absolute())


def join(root: str | os.PathLike, *parts: str) -> str:
    """`root/part/...` for local paths and URLs alike."""
    root = str(root)
    return posixpath.join(root, *parts) if is_url(root) else os.path.join(root, *parts)


def error_reason(e: Exception) -> str:
    """The first line of an OSError's or a TensorFlow error's message, for one-line user errors."""
    text = e.message if isinstance(e, tf.errors.OpError) else getattr(e, "strerror", None) or str(e)
    return (text.strip().splitlines() or [type(e).__name__])[0][:200]


def exists(path: str) -> bool:
    return tf.io.gfile.exists(path)


def read_text(path: str) -> str:
    with tf.io.gfile.GFile(path, "r") as f:
        return f.read()


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Writes `text` so that `path` holds the old or the new content, never half of it (where renames are
    atomic; see the module docstring)."""
    path = str(path)
    head, name = (posixpath if is_url(path) else os.path).split(path)
    tmp = join(head, f".{name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with tf.io.gfile.GFile(tmp, "w") as f:
            f.write(text)
        tf.io.gfile.rename(tmp, path, overwrite=True)
    except BaseException:
        if tf.io.gfile.exists(tmp):
            tf.io.gfile.remove(tmp)
        raise


def write_json_atomic(path: str | os.PathLike, data: dict) -> None:
    """JSON (indented, sorted keys) written with `write_text_atomic`."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def append_json_line(path: str | os.PathLike, data: dict) -> None:
    """Appends `data` as one JSON line. Locally one append of a whole line, so a reader never sees half of one;
    object stores (gs://) cannot append, so there the file is rewritten with `write_text_atomic`."""
    line = json.dumps(data, sort_keys=True, default=str) + "\n"
    path = str(path)
    if not is_url(path):
        with open(path, "a") as f:
            f.write(line)
        return
    write_text_atomic(path, (read_text(path) if exists(path) else "") + line)
