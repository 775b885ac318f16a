"""`--mode=show_config`: the resolved config as it would run, each key with its default and its comment.

The comments are read from configs/default.py's source (its `c.KEY = VALUE  # comment` lines and the comment lines
that continue them), so they cannot drift from the file; its standalone comment lines become section headings.
"""

from __future__ import annotations

import ast
import importlib
import io
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

from fmnist.errors import ConfigError

DEFAULT_MODULE = "configs.default"


@dataclass
class KeyDoc:
    """One key of configs/default.py: the heading it sits under and its comment (continuation lines joined)."""

    heading: str = ""
    comment: list[str] = field(default_factory=list)


def key_docs(source: str) -> dict[str, KeyDoc]:
    """{key: KeyDoc} of every `c.KEY = ...` assignment in `source`, in the file's order."""
    comments = {}  # {row: (column of the comment's first letter, its text)}: aligned text continues a comment.
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            text = tok.string.lstrip("#").lstrip()
            comments[tok.start[0]] = (tok.end[1] - len(text), text.rstrip())
    lines = source.splitlines()
    assignments = {node.lineno: (node.targets[0].attr, node.end_lineno) for node in ast.walk(ast.parse(source))
                   if isinstance(node, ast.Assign) and len(node.targets) == 1
                   and isinstance(node.targets[0], ast.Attribute)}
    docs: dict[str, KeyDoc] = {}
    heading: list[str] = []
    last: tuple[KeyDoc, int] | None = None  # The previous key and its comment's column.
    for row in range(1, len(lines) + 1):
        if row in assignments:
            key, end = assignments[row]
            doc = docs[key] = KeyDoc(" ".join(heading))
            heading = []
            column, text = comments.get(end, (-1, ""))
            doc.comment = [text] if text else []
            last = (doc, column) if text else None
        elif row in comments and lines[row - 1].lstrip().startswith("#"):  # A comment-only line.
            column, text = comments[row]
            if last and column == last[1]:
                last[0].comment.append(text)  # Aligned under the key's own comment: it continues it.
            else:
                heading.append(text)
                last = None
        elif not lines[row - 1].strip():
            heading, last = [], None
    return docs


def _default_module():
    try:
        return importlib.import_module(DEFAULT_MODULE)
    except ImportError:
        raise ConfigError("configs/default.py is not importable: run from the repository root (the wheel installs "
                          "fmnist only; configs/ stays in the repository)") from None


def render(config, source: str) -> str:
    """The config as lines `KEY = VALUE  # [default: D] comment`, grouped under configs/default.py's headings,
    after a title naming `source` (the config file and its overrides)."""
    module = _default_module()
    defaults = module.get_config()
    docs = key_docs(Path(module.__file__).read_text())
    values = config.to_dict()
    keys = [k for k in docs if k in values] + [k for k in values if k not in docs]
    width = max(len(f"{k} = {values[k]!r}") for k in keys)
    out = [f"# {source}: the config as it would run. [default: D] marks a value that differs from "
           "configs/default.py; 'auto' resolves per machine at start (results.json records it).", ""]
    heading = None
    for key in keys:
        doc = docs.get(key, KeyDoc("Not in configs/default.py."))
        if doc.heading and doc.heading != heading:
            out += ["", f"# {doc.heading}"] if heading else [f"# {doc.heading}"]
            heading = doc.heading
        note = [] if key in defaults and defaults[key] == values[key] else \
            [f"[default: {defaults[key]!r}]" if key in defaults else "[not in configs/default.py]"]
        text = " ".join(note + [" ".join(doc.comment)]).strip()
        line = f"{key} = {values[key]!r}"
        out.append(f"{line:<{width}}  # {text}" if text else line)
    return "\n".join(out)
