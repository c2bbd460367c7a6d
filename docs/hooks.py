"""MkDocs hook: a link in an included page (the README, the changelog) to a file of the repository
outside docs/, such as ``examples/backtest.py``, points at that file in the repository, so the README's
links work both on the forge and in the docs built with ``--strict``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# A Markdown link target that is neither absolute nor an anchor: ``](path)`` or ``](path#anchor)``.
RELATIVE_LINK = re.compile(r"\]\((?![a-z]+:|#|/)([^)#\s]+)(#[^)\s]*)?\)")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    repo = str(config["repo_url"]).rstrip("/")
    page_dir = (Path(config["docs_dir"]) / page.file.src_path).parent

    def rewrite(link: re.Match[str]) -> str:
        target, anchor = link.group(1), link.group(2) or ""
        if (page_dir / target).exists() or not (ROOT / target).exists():
            return link.group(0)  # a docs page, or not ours to fix: mkdocs --strict judges it
        return f"]({repo}/blob/main/{target}{anchor})"

    return RELATIVE_LINK.sub(rewrite, markdown)
