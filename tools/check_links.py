"""Check the links of the repository's Markdown files (`make lint`).

A link is either relative — to a file or directory tracked in this repository, never
outside it, and to a heading that exists when it names one (`rules.md#7-…`) — or an
https link to a public site. Anything else (http, file:, localhost, a private address,
a path out of the repository such as `../shared/SPEC.md`) is reported with its file and
line, and the exit status is 1. Nothing is fetched: the check works offline.

    python -m tools.check_links            # every tracked *.md file
    python -m tools.check_links README.md docs
"""

import ipaddress
import subprocess
import sys
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

from markdown_it import MarkdownIt
from markdown_it.token import Token

ROOT = Path(__file__).resolve().parents[1]
_PARSER = MarkdownIt("commonmark").enable("table")


@dataclass(frozen=True)
class Link:
    file: Path
    line: int
    target: str


def tracked(root: Path = ROOT) -> frozenset[str]:
    """Every path git tracks, and every directory that holds one, relative to `root`."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True
    ).stdout.decode()
    files = {name for name in listed.split("\0") if name}
    directories = {str(parent) for name in files for parent in Path(name).parents}
    return frozenset(files | directories)


def links(path: Path) -> Iterator[Link]:
    """Link and image targets of a Markdown file, with their lines (code is skipped)."""
    tokens = _PARSER.parse(path.read_text(encoding="utf-8"))
    for block in tokens:
        line = block.map[0] + 1 if block.map else 1
        for token in block.children or ():
            target = _target(token)
            if target is not None:
                yield Link(path, line, target)


def _target(token: Token) -> str | None:
    if token.type == "link_open":
        return str(token.attrs.get("href", ""))
    if token.type == "image":
        return str(token.attrs.get("src", ""))
    return None


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = unicodedata.normalize("NFKC", heading).strip().lower()
    text = "".join(ch for ch in text if ch.isalnum() or ch in " -_")
    return text.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    """The anchors of a Markdown file's headings (repeats get -1, -2 … as on GitHub)."""
    tokens = _PARSER.parse(path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    found = set()
    for index, token in enumerate(tokens):
        if token.type != "heading_open":
            continue
        base = slug(tokens[index + 1].content)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return frozenset(found)


def problem(link: Link, *, root: Path, known: frozenset[str]) -> str | None:
    """Why the link is not allowed, or None."""
    parts = urlsplit(link.target)
    if parts.scheme:
        return (
            None
            if parts.scheme == "https" and _public(parts.hostname)
            else ("only https links to public sites may leave the repository")
        )
    if not parts.path:  # "#anchor" within the file
        return _missing_anchor(link.file, parts.fragment)
    target = (link.file.parent / unquote(parts.path)).resolve()
    if not target.is_relative_to(root):
        return "points outside the repository"
    relative = target.relative_to(root).as_posix()
    if relative not in known and relative != ".":
        return "no such file or directory is tracked in the repository"
    if parts.fragment and target.suffix == ".md":
        return _missing_anchor(target, parts.fragment)
    return None


def _public(host: str | None) -> bool:
    if not host or "." not in host or host.endswith((".local", ".internal", ".localhost")):
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return True  # a name with a dot
    return address.is_global


def _missing_anchor(path: Path, fragment: str) -> str | None:
    if not fragment or unquote(fragment).lower() in anchors(path):
        return None
    return f"{path.name} has no heading #{fragment}"


def markdown_files(arguments: Sequence[str], *, root: Path, known: frozenset[str]) -> list[Path]:
    if not arguments:
        return [root / name for name in sorted(known) if name.endswith(".md")]
    found: list[Path] = []
    for argument in arguments:
        path = (root / argument).resolve()
        found += sorted(path.rglob("*.md")) if path.is_dir() else [path]
    return [path for path in found if path.relative_to(root).as_posix() in known]


def check(paths: Iterable[Path], *, root: Path = ROOT) -> list[str]:
    known = tracked(root)
    return [
        f"{link.file.relative_to(root)}:{link.line}: {link.target}: {reason}"
        for path in paths
        for link in links(path)
        if (reason := problem(link, root=root, known=known)) is not None
    ]


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    paths = markdown_files(arguments, root=ROOT, known=tracked(ROOT))
    problems = check(paths)
    for line in problems:
        print(line)
    print(f"links: {len(paths)} Markdown files, {len(problems)} bad links", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
