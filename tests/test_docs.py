"""The user documents: README.md and docs/*.md.

* Every fenced ``bash`` and ``python`` block runs as written, in order (README first, then the pages in the
  order of ``mkdocs.yml``'s nav, then any other page), in a temporary copy of the repository: the commands a
  new user copies must work on a fresh clone. Blocks tagged ``text``, ``console``, ``json``, ``toml`` or
  ``sh`` are not run (``sh``: installation commands, which need the network; the README's quick start is run
  by ``.ci/run`` in a fresh virtual environment). The test is in the ``slow`` tier.
* ``docs/commands.md`` is generated from the Click commands: ``python tests/test_docs.py`` rewrites it, and a
  fast test fails when it is out of date.
* The README's example record is what ``fcndetect run sample_images/astronaut.png`` prints.
* No issue numbers, acceptance criteria or absolute paths in user documents.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
FENCE = re.compile(r"^```([\w+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
QUICKSTART = re.compile(r"<!-- quickstart:begin -->.*?<!-- quickstart:end -->", re.S)
RUN = ("bash", "python")


def nav_pages() -> list[Path]:
    """The docs pages in ``mkdocs.yml``'s nav order, then any page the nav does not list."""
    listed = re.findall(r"^\s*-\s*(?:[^:\n]+:\s*)?([\w./-]+\.md)\s*$", (REPO / "mkdocs.yml").read_text(), re.M)
    pages = [DOCS / p for p in listed if (DOCS / p).is_file()]
    return pages + sorted(p for p in DOCS.glob("*.md") if p not in pages)


def user_documents() -> list[Path]:
    return [REPO / "README.md", *nav_pages()]


def blocks(path: Path) -> list[tuple[str, str]]:
    """``(language, code)`` of every fenced block to run in ``path``, in order (the quick start left out)."""
    text = QUICKSTART.sub("", path.read_text(encoding="utf-8"))
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(text) if m.group(1) in RUN]


def fresh_copy(dest: Path) -> Path:
    """The files of the repository's working tree that git tracks or would track (a fresh clone's files)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=False)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: cannot tell a fresh clone's files")
    for name in filter(None, listed.stdout.decode().split("\0")):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


@pytest.mark.slow
def test_every_example_runs_as_written_on_a_fresh_clone(tmp_path: Path) -> None:
    clone = fresh_copy(tmp_path / "clone")
    env = {**os.environ, "PYTHONPATH": str(clone), "PATH": f"{Path(sys.executable).parent}{os.pathsep}"
           f"{os.environ.get('PATH', '')}"}
    ran = 0
    for doc in user_documents():
        for k, (lang, code) in enumerate(blocks(doc)):
            where = f"{doc.relative_to(REPO)}, {lang} block {k + 1}"
            argv = ["bash", "-euo", "pipefail", "-c", code] if lang == "bash" else [sys.executable, "-c", code]
            r = subprocess.run(argv, cwd=clone, env=env, capture_output=True, text=True, timeout=600, check=False)
            assert r.returncode == 0, f"{where} exited {r.returncode}:\n{code}\n--- stderr:\n{r.stderr[-3000:]}"
            ran += 1
    assert ran >= 10, f"only {ran} blocks ran: are the fences tagged bash/python?"


def test_the_readme_record_is_what_the_command_prints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # the README's paths are relative to the repository root
    text = (REPO / "README.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- output of: (.+?) -->\s*```json\n(.*?)```", text, re.S)
    assert m, "README.md: the example record (<!-- output of: CMD --> and a json block) is missing"
    cmd, shown = m.group(1).split(), json.loads(m.group(2))
    assert cmd[0] == "fcndetect"
    from click.testing import CliRunner

    from fcndetect.cli import cli

    r = CliRunner().invoke(cli, [*cmd[1:], "-q"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    printed = json.loads(r.stdout)
    assert _rounded(printed, 1) == _rounded(shown, 1)  # the last digits may follow the thread count


def _rounded(value: object, digits: int) -> object:
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, list):
        return [_rounded(v, digits) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    return value


FORBIDDEN = [
    (re.compile(r"\bissue\s*#?\d+", re.I), "an issue number"),
    (re.compile(r"#\d{2,}\b"), "an issue number"),
    (re.compile(r"acceptance", re.I), "'acceptance'"),
    (re.compile(r"(?<![\w.])/(?:work|home|root|tmp|Users)/"), "an absolute machine path"),
    (re.compile(r"\b\d[\d,]* tests\b"), "a test count"),
    (re.compile(r"load average", re.I), "a load average"),
]


@pytest.mark.parametrize("doc", user_documents(), ids=lambda p: str(p.relative_to(REPO)))
def test_user_documents_speak_to_users(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    found = [f"{what}: {m.group(0)!r}" for pattern, what in FORBIDDEN for m in pattern.finditer(text)]
    assert found == [], f"{doc.relative_to(REPO)}: {found}"


def test_the_readme_stays_short() -> None:
    assert len((REPO / "README.md").read_text(encoding="utf-8").splitlines()) <= 300


def test_mkdocs_nav_lists_only_existing_pages() -> None:
    listed = re.findall(r"^\s*-\s*(?:[^:\n]+:\s*)?([\w./-]+\.md)\s*$", (REPO / "mkdocs.yml").read_text(), re.M)
    assert [p for p in listed if not (DOCS / p).is_file()] == []


# --- docs/commands.md, generated from the Click commands ---------------------------------------------------

def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def commands_markdown() -> str:
    """The command reference: every command, its usage, its help and every option with its help."""
    import click

    from fcndetect.cli import cli

    out = ["# Commands", "",
           "Every command and option, as `fcndetect COMMAND --help` prints them (this page is generated from",
           "the command line's own definitions: `python tests/test_docs.py`).", "",
           "| command | what it does |", "|---|---|"]
    group_ctx = cli.make_context("fcndetect", [], resilient_parsing=True, terminal_width=100)
    for name in cli.list_commands(group_ctx):
        cmd = cli.get_command(group_ctx, name)
        assert cmd is not None
        out.append(f"| [`{name}`](#fcndetect-{name}) | {_cell(cmd.get_short_help_str(limit=300))} |")
    out += ["", "```text", *(line.rstrip() for line in cli.get_help(group_ctx).split("Commands:")[0].rstrip().splitlines()),
            "```", ""]
    for name in cli.list_commands(group_ctx):
        cmd = cli.get_command(group_ctx, name)
        assert cmd is not None
        ctx = cmd.make_context(name, [], parent=group_ctx, resilient_parsing=True)
        out += [f"## `fcndetect {name}`", "", "```text", cmd.get_usage(ctx), "```", ""]
        out += [line.strip() for line in (cmd.help or "").replace("\b\n", "").split("\n")] + [""]
        rows = [p.get_help_record(ctx) for p in cmd.get_params(ctx) if isinstance(p, click.Option)]
        args = [p.human_readable_name for p in cmd.get_params(ctx) if isinstance(p, click.Argument)]
        if args:
            out += ["Arguments: " + ", ".join(f"`{a}`" for a in args), ""]
        out += ["| option | meaning |", "|---|---|"]
        out += [f"| `{_cell(opts)}` | {_cell(help_)} |" for opts, help_ in filter(None, rows)]
        out.append("")
    return "\n".join(line.rstrip() for line in out).rstrip() + "\n"


def test_commands_page_is_current() -> None:
    assert (DOCS / "commands.md").read_text(encoding="utf-8") == commands_markdown(), (
        "docs/commands.md is out of date: run python tests/test_docs.py")


if __name__ == "__main__":
    (DOCS / "commands.md").write_text(commands_markdown(), encoding="utf-8")
    print("wrote docs/commands.md")
