"""tools/check_links.py: which links of a repository's Markdown are refused, and why."""

import subprocess
from pathlib import Path

import pytest

from tools.check_links import check, slug


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "rules.md").write_text("# The rules\n\n## 7. Idempotency, time\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("")
    (tmp_path / "untracked.md").write_text("")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "add", "docs", "src"], cwd=tmp_path, check=True)
    return tmp_path


def problems(repo: Path, text: str) -> list[str]:
    page = repo / "docs" / "page.md"
    page.write_text(text)
    subprocess.run(["git", "add", str(page)], cwd=repo, check=True)
    return check([page], root=repo)


def test_links_inside_the_repository_and_to_public_https_sites_pass(repo: Path) -> None:
    text = (
        "[rules](rules.md) [§7](rules.md#7-idempotency-time) [code](../src/a.py) [dir](../src)\n"
        "[here](#a-heading) [buf](https://buf.build/docs/breaking/rules/)\n\n## A heading\n\n"
        "`[not a link](../../x)` and\n\n```\n[nor this](http://x)\n```\n"
    )
    assert problems(repo, text) == []


@pytest.mark.parametrize(
    ("link", "reason"),
    [
        ("../../shared/SPEC.md", "points outside the repository"),
        ("../untracked.md", "no such file or directory is tracked in the repository"),
        ("missing.md", "no such file or directory is tracked in the repository"),
        ("rules.md#8-api", "rules.md has no heading #8-api"),
        ("#nowhere", "page.md has no heading #nowhere"),
        ("http://example.com/", "only https links to public sites may leave the repository"),
        ("https://localhost:8080/", "only https links to public sites may leave the repository"),
        ("https://10.0.0.1/", "only https links to public sites may leave the repository"),
        ("ftp://example.com/x", "only https links to public sites may leave the repository"),
    ],
)
def test_a_bad_link_is_reported_with_file_line_and_reason(
    repo: Path, link: str, reason: str
) -> None:
    assert problems(repo, f"# Page\n\nsee [it]({link})\n") == [f"docs/page.md:3: {link}: {reason}"]


def test_slugs_are_githubs() -> None:
    assert slug("7. Idempotency, concurrency, time") == "7-idempotency-concurrency-time"
    assert slug("Calling it: `loyalty` and Python") == "calling-it-loyalty-and-python"
