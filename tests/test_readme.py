"""The docs a newcomer reads: the README's length, its links, and one way of calling the tools everywhere."""

import re

from conftest import ROOT

DOCS = [ROOT / "README.md", ROOT / "BUILD.md", ROOT / "launch" / "README.md", ROOT / "benchmarks" / "README.md",
        *sorted((ROOT / "configs").glob("*.py"))]


def test_the_readme_is_short_and_its_links_resolve():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    targets = re.findall(r"\]\(([^)#\s]+)\)", text)
    local = [t for t in targets if "://" not in t]
    assert {"LICENSE", "docs/tensorboard_scalars.png", "docs/tensorboard_images.png"} <= set(local)
    assert [t for t in local if not (ROOT / t).exists()] == []


def test_the_docs_call_the_tools_one_way():
    """`source .venv/bin/activate` once, then `python -m ...` (the README's set-up): never `.venv/bin/TOOL`."""
    assert "source .venv/bin/activate" in (ROOT / "README.md").read_text()
    assert [p.name for p in DOCS if re.search(r"\.venv/bin/(?!activate)", p.read_text())] == []
