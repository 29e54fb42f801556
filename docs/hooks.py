"""mkdocs hooks (mkdocs.yml `hooks:`): what the site holds besides the pages under docs/.

- `index.md` is README.md, so the repository's front page and the site's home page are one text;
- `reference/config.md` is generated at build time from the typed config (moe_tf.config.reference), so it cannot
  drift from the schema; the file of that name in docs/ is a stub saying so, for readers of the repository;
- a page's relative link to a file of the repository outside docs/ (`../../configs/digits_mmoe.yaml`,
  `../../benchmarks/RESULTS.md#speed`) works on GitHub as written; for the site, the file is copied under `repo/`
  (a markdown file becomes a page, whose own links are followed the same way) and the link is rewritten to it.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from urllib.parse import urlsplit

from mkdocs.structure.files import File, Files

REPO = Path(__file__).resolve().parent.parent
LINK = re.compile(r"(\]\()([^)\s]+)(\))")  # the target of a markdown link or image: [text](target)
_sources: dict[str, Path] = {}  # src_uri → the file a page is read from (its links are relative to it)


def on_files(files: Files, config) -> Files:
    from moe_tf.config.reference import reference_markdown

    docs = Path(config.docs_dir).resolve()
    _sources.clear()
    for file in files.documentation_pages():
        _sources[file.src_uri] = Path(file.abs_src_path)
    _add(files, config, "index.md", REPO / "README.md")
    stub = files.get_file_from_path("reference/config.md")  # what GitHub shows: how to get the page
    if stub is not None:
        files.remove(stub)
    files.append(File.generated(config, "reference/config.md", content=reference_markdown()))
    pending = list(_sources.items())
    while pending:
        _, source = pending.pop()
        for target in _targets(source.read_text(encoding="utf-8")):
            path = (source.parent / target).resolve()
            if path.is_file() and not path.is_relative_to(docs) and path.is_relative_to(REPO):
                uri = _site_uri(path, docs)
                if files.get_file_from_path(uri) is None:
                    _add(files, config, uri, path)
                    if uri.endswith(".md"):
                        pending.append((uri, path))
    return files


def on_page_markdown(markdown: str, page, config, files: Files) -> str:
    """Links to repository files, and README's links into docs/, pointed at where the site has them."""
    source = _sources.get(page.file.src_uri)
    if source is None:
        return markdown
    docs = Path(config.docs_dir).resolve()
    here = posixpath.dirname(page.file.src_uri)

    def rewrite(match: re.Match) -> str:
        target = match.group(2)
        parts = urlsplit(target)
        if parts.scheme or parts.netloc or target.startswith(("#", "/")) or not parts.path:
            return match.group(0)
        path = (source.parent / parts.path).resolve()
        if not path.is_relative_to(docs) and not (path.is_relative_to(REPO) and path.is_file()):
            return match.group(0)
        uri = _site_uri(path, docs)
        new = posixpath.relpath(uri, here or ".") + (f"#{parts.fragment}" if parts.fragment else "")
        return match.group(1) + new + match.group(3)

    return LINK.sub(rewrite, markdown)


def _site_uri(path: Path, docs: Path) -> str:
    """Where the site has a repository file: README.md is the home page, docs/X is X, any other file repo/X."""
    if path == REPO / "README.md":
        return "index.md"
    if path.is_relative_to(docs):
        return path.relative_to(docs).as_posix()
    return "repo/" + path.relative_to(REPO).as_posix()


def _add(files: Files, config, uri: str, path: Path) -> None:
    existing = files.get_file_from_path(uri)
    if existing is not None:
        files.remove(existing)
    files.append(File.generated(config, uri, abs_src_path=str(path)))
    _sources[uri] = path


def _targets(markdown: str) -> list[str]:
    """The relative link targets of a markdown text, without their #fragment."""
    out = []
    for match in LINK.finditer(markdown):
        parts = urlsplit(match.group(2))
        if not (parts.scheme or parts.netloc or match.group(2).startswith(("#", "/"))) and parts.path:
            out.append(parts.path)
    return out
