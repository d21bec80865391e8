"""The user documentation stays true to the code and to the repository.

* docs/methods.md lists every strategy this package registers, with the
  registry's steps, hyperparameter defaults and harness defaults;
* no file points to notes outside the repository;
* every relative link in README.md and docs/ resolves (anchors included);
* every command in README.md names scripts, options and input files that exist;
* the folders those commands write are ignored by git.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import shlex
import subprocess
import sys
from pathlib import Path

import goal_plugin as gp
from goal_plugin.registry import STRATEGIES, strategy_hyperparameters
from goal_plugin.strategies.base import HarnessDefaults

ROOT = Path(__file__).resolve().parents[1]
METHODS_PAGE = ROOT / "docs" / "methods.md"
RECIPE_HEADER = [
    "strategy", "magnitude step", "direction step", "after backward", "training step", "hyperparameters (defaults)"
]
HARNESS_FIELDS = [field.name for field in dataclasses.fields(HarnessDefaults)]
HARNESS_HEADER = ["strategy"] + [f"`{name}`" for name in HARNESS_FIELDS]

# Markdown files the tools write (named in the docs, never part of the repository).
WRITTEN_MARKDOWN = {"tables.md"}
# Pointers to material a user of the repository does not have.
OUTSIDE_POINTERS = re.compile(
    r"\.\./shared|(?<![\w.~])/shared/|\bdesign notes?\b|\bproduct brief\b", re.I
)
MARKDOWN_NAME = re.compile(r"(?<![\w./:-])[\w./-]*\w\.md\b")  # whole names, not URLs
FENCED_BLOCK = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]+`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
INPUT_SUFFIXES = (".yaml", ".yml", ".json", ".csv")
OUTPUT_FOLDERS = ("runs", "tables", "plots", "results")


def repository_files() -> list[Path]:
    """Tracked files plus new ones that git does not ignore."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode()
    return sorted({ROOT / name for name in listed.split("\0") if name and (ROOT / name).is_file()})


def user_pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def markdown_tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """(header cells, rows of cells) of every pipe table in ``text``."""
    tables, block = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            block.append([cell.strip() for cell in line.strip().strip("|").split("|")])
            continue
        if len(block) >= 2:
            tables.append((block[0], block[2:]))
        block = []
    return tables


def table_by_header(header: list[str]) -> dict[str, list[str]]:
    """Rows of the docs/methods.md table with ``header``, keyed by strategy name."""
    assert METHODS_PAGE.is_file(), "docs/methods.md is missing: it documents every strategy"
    tables = markdown_tables(METHODS_PAGE.read_text())
    matching = [rows for found, rows in tables if found == header]
    assert len(matching) == 1, f"docs/methods.md needs exactly one table with header {header}"
    rows: dict[str, list[str]] = {}
    for cells in matching[0]:
        name = cells[0].strip("`")
        assert name not in rows, f"docs/methods.md lists {name!r} twice in the table {header}"
        rows[name] = cells[1:]
    return rows


def code_spans(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def documented_class(cell: str) -> str | None:
    spans = code_spans(cell)
    return spans[0] if spans else None


def literal(text: str) -> object:
    """The Python literal ``text`` spells; malformed text stays a string (and mismatches)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def documented_hyperparameters(cell: str) -> dict[str, object]:
    pairs = (span.partition("=") for span in code_spans(cell))
    return {key: literal(value) for key, _, value in pairs}


def built_in_strategies() -> list[str]:
    """Strategies registered by this package (not by other installed packages or tests)."""
    return [
        name for name in gp.list_strategies()
        if getattr(STRATEGIES.get(name), "__module__", "").partition(".")[0] == "goal_plugin"
    ]


def test_methods_page_lists_every_built_in_strategy_with_the_registry_defaults():
    recipes, harness = table_by_header(RECIPE_HEADER), table_by_header(HARNESS_HEADER)
    names = built_in_strategies()
    problems = [
        f"{name}: no row in the {which} table"
        for which, rows in (("recipe", recipes), ("harness-defaults", harness))
        for name in names if name not in rows
    ]
    problems += [
        f"{name}: documented but not a registered strategy"
        for name in sorted(set(recipes) | set(harness)) if name not in gp.list_strategies()
    ]
    for name in names:
        if name not in recipes or name not in harness:
            continue
        strategy = gp.create_strategy(name)
        magnitude, direction, after_backward, training_step, hyperparameters = recipes[name]
        code = {
            "magnitude step": strategy.magnitude,
            "direction step": strategy.direction,
            "after backward": strategy.parameter_hook,
            "training step": strategy.training_method,
        }
        for (column, part), cell in zip(code.items(), (magnitude, direction, after_backward, training_step)):
            actual = None if part is None else type(part).__name__
            if documented_class(cell) != actual:
                problems.append(f"{name}: {column} is {actual}, documented {cell!r}")
        expected = strategy_hyperparameters(name)
        if documented_hyperparameters(hyperparameters) != expected:
            problems.append(
                f"{name}: hyperparameters are {expected}, documented {hyperparameters!r}"
            )
        for field, cell in zip(HARNESS_FIELDS, harness[name]):
            actual = getattr(strategy.defaults, field)
            if literal(cell.strip("`")) != actual:
                problems.append(f"{name}: {field} is {actual!r}, documented {cell}")
    assert not problems, "docs/methods.md disagrees with the registry:\n" + "\n".join(problems)


def test_no_file_points_outside_the_repository():
    files = repository_files()
    present = [path.relative_to(ROOT).as_posix() for path in files]
    problems = []
    for path in files:
        if path == Path(__file__).resolve():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:  # binary data
            continue
        where = path.relative_to(ROOT).as_posix()
        line = lambda match: text.count("\n", 0, match.start()) + 1  # noqa: E731
        for match in OUTSIDE_POINTERS.finditer(text):
            problems.append(f"{where}:{line(match)}: {match.group()!r}")
        for match in MARKDOWN_NAME.finditer(text):
            reference = re.sub(r"^(\.\.?/)+", "", match.group())
            if reference in WRITTEN_MARKDOWN or any(
                name == reference or name.endswith("/" + reference) for name in present
            ):
                continue
            problems.append(f"{where}:{line(match)}: {match.group()!r} is not in the repository")
    assert not problems, "references to files users do not have:\n" + "\n".join(problems)


def heading_anchors(page: Path) -> set[str]:
    """GitHub's anchors of the headings of ``page``."""
    text = FENCED_BLOCK.sub("", page.read_text())
    headings = re.findall(r"^#+\s+(.*?)\s*$", text, re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_relative_links_in_readme_and_docs_resolve():
    problems = []
    for page in user_pages():
        prose = INLINE_CODE.sub("code", FENCED_BLOCK.sub("", page.read_text()))
        for target in LINK.findall(prose):
            if re.match(r"[a-z]+:", target):
                continue  # http:, https:, mailto:
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            where = page.relative_to(ROOT).as_posix()
            if not linked.is_relative_to(ROOT) or not linked.exists():
                problems.append(f"{where}: {target} does not exist in the repository")
            elif anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked):
                problems.append(f"{where}: {target} names no heading of {path or where}")
    assert not problems, "broken links:\n" + "\n".join(problems)


def readme_commands() -> list[list[str]]:
    """Commands of README.md's bash blocks and of its inline `python ...` spans, tokenised."""
    text = (ROOT / "README.md").read_text()
    lines = [
        line
        for block in re.findall(r"^```(?:bash|sh|console)\n(.*?)^```", text, re.S | re.M)
        for line in block.splitlines()
    ]
    lines += [span for span in code_spans(FENCED_BLOCK.sub("", text)) if span.startswith("python ")]
    commands = []
    for line in lines:
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        command: list[str] = []
        for token in [*lexer, ";"]:
            if set(token) <= set(";&|"):  # && || ; | end a command
                if command:
                    commands.append(command)
                command = []
            else:
                command.append(token)
    return commands


def script_options(scripts: set[str]) -> dict[str, dict[str, bool]]:
    """Each script's options from its ``--help`` (run side by side), mapped to whether
    the option takes a value."""
    shown = {
        script: subprocess.Popen(
            [sys.executable, script, "--help"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for script in sorted(scripts)
    }
    options = {}
    for script, process in shown.items():
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, f"{script} --help failed:\n{stderr}"
        listed = re.findall(r"^\s+(?:-\w+, )?(--[\w-]+)(?: ([A-Z][\w=]*))?", stdout, re.M)
        options[script] = {option: bool(value) for option, value in listed}
    return options


def test_readme_commands_name_scripts_options_and_files_that_exist():
    commands = readme_commands()
    options_of = script_options({
        tokens[1]
        for tokens in commands
        if tokens[0] == "python" and (ROOT / tokens[1]).is_file()
        and any(argument.startswith("--") for argument in tokens[2:])
    })
    problems, created = [], set()
    for tokens in commands:
        shown = " ".join(tokens)
        created.update(target for redirect, target in zip(tokens, tokens[1:]) if redirect == ">")
        if tokens[0] == "cp" and len(tokens) == 3:
            if not (ROOT / tokens[1]).exists():
                problems.append(f"{shown}: {tokens[1]} does not exist")
            created.add(tokens[2])
            continue
        if tokens[0] != "python" or len(tokens) < 2 or tokens[1].startswith("-"):
            continue
        script, arguments = tokens[1], tokens[2:]
        if not (ROOT / script).is_file():
            problems.append(f"{shown}: no script {script}")
            continue
        options = options_of.get(script, {})
        positionals, expects_value = [], False
        for argument in arguments:
            if expects_value:
                expects_value = False
            elif argument.startswith("--"):
                option = argument.split("=", 1)[0]
                if option not in options:
                    problems.append(f"{shown}: {script} has no option {option}")
                expects_value = options.get(option, False) and "=" not in argument
            else:
                positionals.append(argument)
            missing = not (argument in created or (ROOT / argument).exists())
            if argument.endswith(INPUT_SUFFIXES) and missing:
                problems.append(f"{shown}: {argument} does not exist (create it first)")
        if script == "runners/sweep.py":
            for space in positionals:  # files are checked above; a name is a shipped space
                shipped = (ROOT / "search_spaces" / f"{space}.yaml").is_file()
                if not space.endswith(INPUT_SUFFIXES) and not shipped:
                    problems.append(f"{shown}: {space} is neither a file nor a search_spaces/ name")
    assert not problems, "README commands that fail on a fresh clone:\n" + "\n".join(problems)


def test_folders_the_readme_commands_write_are_ignored_by_git():
    written = [f"{folder}/example/output.json" for folder in OUTPUT_FOLDERS]
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", *written], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    missing = sorted(set(written) - set(ignored))
    assert not missing, f"not in .gitignore: {missing}"
