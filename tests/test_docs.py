"""The README and docs/ stay true to the code.

Every environment variable the package reads and every ``instrument()`` argument has one row in the
configuration reference (docs/configuration.md), and every row is a real one; every name in
``otel_tokens.semconv`` (attributes, metrics, span events) has one row in the telemetry reference
(docs/telemetry.md), and every name there is one the package writes; the README stays short and keeps
its set-up commands; every relative link in the README and docs/ reaches a file, and a heading when it
names one.

Names are found in the source, never listed here: the package's string literals (``OTEL_*``), the
``Settings`` dataclass, ``inspect.signature(instrument)`` and semconv's constants whose values are dotted
names (``gen_ai.usage.input_tokens``), so a new setting or attribute without its row fails a test.
"""

from __future__ import annotations

import ast
import dataclasses
import fnmatch
import importlib
import inspect
import re
import tomllib
from collections import Counter
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

import otel_tokens
from otel_tokens import semconv

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "otel_tokens"
README = ROOT / "README.md"
DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"
TELEMETRY = DOCS / "telemetry.md"

README_MAX_LINES = 250
# The README's two set-up commands: one installs and runs the demo, one installs and passes the tests
# (.ci/run runs the second on a fresh machine). Change them here and in the README together.
SET_UP_COMMANDS = (
    "python3 -m venv .venv && .venv/bin/pip install -e '.[demo]' && .venv/bin/otel-tokens demo",
    "apt-get install -y prometheus prometheus-alertmanager docker-compose chromium redis-server"
    " && python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest",
)

# A variable's name: OTEL_ and capitals; not a prefix such as OTEL_TOKENS_* or OTEL_EXPORTER_OTLP_.
ENV_NAME = re.compile(r"\bOTEL_[A-Z0-9_]*[A-Z0-9](?![A-Z0-9_*])")
# A telemetry name: lower-case words joined by dots (gen_ai.usage.input_tokens, server.port).
DOTTED_NAME = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+")
CODE_NAME = re.compile(r"`([^`]+)`")
IDENTIFIER_CELL = re.compile(r"`([a-z_][a-z0-9_]*)`")
NOT_AN_ARGUMENT = "–"  # the cell of a variable with no instrument() argument (en dash)


# -- reading Markdown ----------------------------------------------------------------------------
def _lines_outside_code(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) of every line not inside a fenced code block (fences may be indented)."""
    fenced = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def _fenced_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, stripped line) of every line inside a fenced code block."""
    outside = {number for number, _ in _lines_outside_code(path)}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if number not in outside and not line.lstrip().startswith("```"):
            yield number, line.strip()


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def tables(path: Path) -> list[tuple[list[str], list[tuple[int, list[str]]]]]:
    """Every table of a Markdown file: (header cells, [(line number, row cells)])."""
    found: list[tuple[list[str], list[tuple[int, list[str]]]]] = []
    previous: tuple[int, str] | None = None
    current: list[tuple[int, list[str]]] | None = None
    for number, line in _lines_outside_code(path):
        if not line.lstrip().startswith("|"):
            current, previous = None, None
            continue
        if current is not None:
            current.append((number, _cells(line)))
        elif previous is not None and re.fullmatch(r"\|?(\s*:?-+:?\s*\|)+\s*:?-*:?\s*", line.strip()):
            current = []
            found.append((_cells(previous[1]), current))
        else:
            previous = (number, line)
    return found


def table_rows(path: Path, first_header: str) -> list[tuple[int, list[str]]]:
    """The rows of the tables whose first header cell is ``first_header``."""
    rows = [row for header, body in tables(path) if header[0] == first_header for row in body]
    assert rows, f"{path.name} has no table headed {first_header!r}"
    return rows


def code_names(cell: str, pattern: re.Pattern[str]) -> list[str]:
    """Names written as code in a cell that match ``pattern`` whole."""
    return [name for name in CODE_NAME.findall(cell) if pattern.fullmatch(name)]


# -- what the package reads and writes ---------------------------------------------------------------
def _package_sources() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


@cache
def package_literals() -> tuple[frozenset[str], frozenset[str]]:
    """(every string literal of the package, every f-string as a glob with ``*`` for each field)."""
    literals: set[str] = set()
    globs: set[str] = set()
    for _path, tree in _package_sources():
        in_f_strings = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):
                in_f_strings.update(id(value) for value in node.values)
                globs.add("".join(v.value if isinstance(v, ast.Constant) else "*" for v in node.values))
        literals.update(
            node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in in_f_strings
        )
    return frozenset(literals), frozenset(globs)


@cache
def settings_module():
    """The module that defines the ``Settings`` dataclass, wherever it lives in the package."""
    for path, tree in _package_sources():
        if any(isinstance(node, ast.ClassDef) and node.name == "Settings" for node in tree.body):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            return importlib.import_module(module)
    raise AssertionError("no module of otel_tokens defines Settings")


def variables_read() -> tuple[set[str], set[str]]:
    """(names of the variables the package reads, globs of the names it builds in f-strings)."""
    literals, f_strings = package_literals()
    names = {name for text in literals for name in ENV_NAME.findall(text)}
    module = settings_module()
    constants = {value for name, value in vars(module).items() if name.startswith("OTEL_") and value == name}
    assert constants, f"{module.__name__} defines no OTEL_* constants"
    globs = {
        match for text in f_strings for match in re.findall(r"OTEL_[A-Z0-9_*]*[A-Z0-9]", text) if "*" in match
    }
    return names | constants, globs


def standard_variables() -> set[str]:
    """The OpenTelemetry API's and SDK's own variables."""
    import opentelemetry.environment_variables as api_variables
    import opentelemetry.sdk.environment_variables as sdk_variables

    modules = (api_variables, sdk_variables)
    return {name for module in modules for name in vars(module) if name.startswith("OTEL_")}


def instrument_arguments() -> set[str]:
    """The keyword arguments ``instrument()`` takes: its named parameters and, for ``**settings``, every
    field of ``Settings``."""
    arguments = set()
    for parameter in inspect.signature(otel_tokens.instrument).parameters.values():
        if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            arguments.add(parameter.name)
        elif parameter.kind is parameter.VAR_KEYWORD:
            arguments.update(field.name for field in dataclasses.fields(settings_module().Settings))
    return arguments


def semconv_names() -> dict[str, set[str]]:
    """semconv's telemetry names by kind: ``metric``, ``event`` and ``attribute`` (the rest). Values that
    are not dotted names (units, token types, operation names, the scope) are not names of their own."""
    kinds: dict[str, set[str]] = {"metric": set(), "event": set(), "attribute": set()}
    for constant, value in vars(semconv).items():
        if not constant.isupper() or not isinstance(value, str) or not DOTTED_NAME.fullmatch(value):
            continue
        if constant.startswith("METRIC_"):
            kinds["metric"].add(value)
        elif constant.startswith("EVENT_"):
            kinds["event"].add(value)
        else:
            kinds["attribute"].add(value)
    assert all(kinds.values()), kinds
    return kinds


def gen_ai_literals() -> set[str]:
    """Every ``gen_ai.*`` name in the package's source, semconv's and the few written as literals
    elsewhere (no module is named gen_ai, so each is a telemetry name)."""
    literals = package_literals()[0]
    return {text for text in literals if text.startswith("gen_ai.") and DOTTED_NAME.fullmatch(text)}


# -- the configuration reference ----------------------------------------------------------------------
def configuration_rows() -> list[tuple[int, list[str]]]:
    rows = table_rows(CONFIGURATION, "environment variable")
    for number, cells in rows:
        assert len(cells) == 5, f"configuration.md:{number}: a row needs 5 cells, has {len(cells)}"
    return rows


def documented_variables() -> Counter[str]:
    return Counter(name for _, cells in configuration_rows() for name in code_names(cells[0], ENV_NAME))


def documented_arguments() -> Counter[str]:
    found: Counter[str] = Counter()
    for number, cells in configuration_rows():
        argument = IDENTIFIER_CELL.fullmatch(cells[1])
        assert argument or cells[1].startswith(NOT_AN_ARGUMENT), (
            f"configuration.md:{number}: an argument cell is one `name`, or {NOT_AN_ARGUMENT}: {cells[1]!r}"
        )
        if argument:
            found[argument.group(1)] += 1
    return found


def test_every_variable_the_package_reads_has_a_row() -> None:
    names, globs = variables_read()
    documented = documented_variables()
    assert sorted(names - set(documented)) == [], "variables read with no row in configuration.md"
    unmatched = sorted(glob for glob in globs if not fnmatch.filter(documented, glob))
    assert unmatched == [], "variables otel_tokens builds in f-strings with no row in docs/configuration.md"


def test_every_documented_variable_is_read_by_the_package_or_standard_opentelemetry() -> None:
    names, globs = variables_read()
    documented = documented_variables()
    assert [name for name, count in documented.items() if count > 1] == [], "one row per variable"
    ours = {name for name in documented if name.startswith("OTEL_TOKENS_")}
    assert sorted(ours - names) == [], "OTEL_TOKENS_* rows that otel_tokens never reads"
    built = {name for name in documented if any(fnmatch.fnmatch(name, glob) for glob in globs)}
    others = set(documented) - ours - built - names
    assert sorted(others - standard_variables()) == [], "OTEL_* rows neither read by otel_tokens nor standard"


def test_every_instrument_argument_has_a_row_and_every_row_is_one() -> None:
    documented = documented_arguments()
    assert [name for name, count in documented.items() if count > 1] == [], "one row per argument"
    arguments = instrument_arguments()
    assert sorted(arguments - set(documented)) == [], "instrument() arguments with no row in configuration.md"
    assert sorted(set(documented) - arguments) == [], "rows for arguments instrument() does not take"


def test_a_row_pairs_a_variable_with_the_argument_it_sets() -> None:
    """Setting a row's variable changes exactly the ``Settings`` field the row names."""
    settings = settings_module().Settings
    default = settings.from_env({})
    probes = ("true", "false", "7", "closed", "SPAN_ONLY", "a-value@openai", "gen_ai_latest_experimental")
    fields = [field.name for field in dataclasses.fields(settings)]
    for number, cells in configuration_rows():
        variables = code_names(cells[0], ENV_NAME)
        argument = IDENTIFIER_CELL.fullmatch(cells[1])
        if not variables or argument is None or argument.group(1) not in fields:
            continue
        changed = set()
        for probe in probes:
            try:
                read = settings.from_env({variables[0]: probe})
            except ValueError:  # a value this variable refuses: the other probes tell
                continue
            changed.update(name for name in fields if getattr(read, name) != getattr(default, name))
        assert changed == {argument.group(1)}, (
            f"configuration.md:{number}: {variables[0]} sets {sorted(changed)}, not {argument.group(1)}"
        )


# -- the telemetry reference --------------------------------------------------------------------------
# The first header cell of the telemetry reference's tables, by kind of name.
TELEMETRY_TABLES = {
    "metric": ("metric",),
    "event": ("event",),
    "attribute": ("attribute", "event attribute", "metric attribute"),
}


def telemetry_rows(kind: str) -> Counter[str]:
    """The names in the first column of the telemetry reference's tables of one kind."""
    found: Counter[str] = Counter()
    for header in TELEMETRY_TABLES[kind]:
        for number, cells in table_rows(TELEMETRY, header):
            names = code_names(cells[0], DOTTED_NAME)
            assert len(names) == 1, f"telemetry.md:{number}: a row names one {kind}: {cells[0]!r}"
            found[names[0]] += 1
    return found


@pytest.mark.parametrize("kind", sorted(TELEMETRY_TABLES))
def test_every_semconv_name_has_one_row_in_the_telemetry_reference(kind: str) -> None:
    documented = telemetry_rows(kind)
    assert sorted(semconv_names()[kind] - set(documented)) == [], f"{kind}s with no row in docs/telemetry.md"
    assert [name for name, count in documented.items() if count > 1] == [], f"one row per {kind}"


def test_every_name_in_the_telemetry_reference_is_one_the_package_writes() -> None:
    known = set().union(*semconv_names().values()) | gen_ai_literals()
    written = set()
    for _header, body in tables(TELEMETRY):
        for _number, cells in body:
            written.update(name for cell in cells for name in CODE_NAME.findall(cell)
                           if DOTTED_NAME.fullmatch(name) and name.startswith(("gen_ai.", "otel_tokens.")))
    assert written, "docs/telemetry.md names no gen_ai.* or otel_tokens.* telemetry"
    assert sorted(written - known) == [], "names in docs/telemetry.md that otel_tokens does not write"


def test_every_gen_ai_name_in_the_package_source_has_a_row() -> None:
    """Including the few written as literals rather than semconv constants."""
    documented = set().union(*(telemetry_rows(kind) for kind in TELEMETRY_TABLES))
    assert sorted(gen_ai_literals() - documented) == [], "gen_ai.* names with no row in telemetry.md"


def test_metric_rows_give_an_instrument_and_a_semconv_unit() -> None:
    units = {value for name, value in vars(semconv).items() if name.startswith("UNIT_")}
    for number, cells in table_rows(TELEMETRY, "metric"):
        assert cells[1] in ("histogram", "counter", "gauge"), f"telemetry.md:{number}: {cells[1]!r}"
        assert CODE_NAME.findall(cells[2]) in ([unit] for unit in units), (
            f"telemetry.md:{number}: unit {cells[2]!r} is not one of semconv's {sorted(units)}"
        )


# -- the README ------------------------------------------------------------------------------------
def test_the_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail to docs/"


@pytest.mark.parametrize("command", SET_UP_COMMANDS, ids=["demo", "tests"])
def test_the_readme_gives_the_set_up_command(command: str) -> None:
    commands = [line for _, line in _fenced_lines(README)]
    assert command in commands, "README.md's set-up commands changed: keep them and SET_UP_COMMANDS true"


def test_the_set_up_commands_install_extras_and_a_command_that_exist() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for command in SET_UP_COMMANDS:
        for extra in re.findall(r"'\.\[([a-z-]+)\]'", command):
            assert extra in project["optional-dependencies"], f"no extra {extra!r} in pyproject.toml"
    assert "otel-tokens" in project["scripts"]


# -- links -----------------------------------------------------------------------------------------
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
PAGES = [README, ROOT / "ARCHITECTURE.md", *sorted(DOCS.glob("*.md")), ROOT / "benchmarks" / "README.md"]


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text without Markdown, lower case, punctuation dropped
    (letters, digits, ``-``, ``_`` and spaces stay), spaces turned into hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images: their text
    text = re.sub(r"[`*]", "", text)
    text = re.sub(r"(?<!\w)_|_(?!\w)", "", text)  # _emphasis_, not snake_case
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: Counter[str] = Counter()
    found = set()
    for _, line in _lines_outside_code(path):
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            slug = github_slug(heading.group(1))
            found.add(slug if not seen[slug] else f"{slug}-{seen[slug]}")
            seen[slug] += 1
    return found


def links(path: Path) -> Iterator[tuple[int, str]]:
    for number, line in _lines_outside_code(path):
        for target in LINK.findall(re.sub(r"`[^`]*`", lambda code: " " * len(code.group()), line)):
            yield number, target


def test_headings_get_github_s_anchors() -> None:
    assert github_slug("AWS Bedrock (boto3 / botocore)") == "aws-bedrock-boto3--botocore"
    assert github_slug("Anthropic's own spans") == "anthropics-own-spans"
    assert github_slug("The `otel_tokens.budget.*` gauges") == "the-otel_tokensbudget-gauges"
    assert github_slug("Spend that survives restarts, and one budget across a fleet") == (
        "spend-that-survives-restarts-and-one-budget-across-a-fleet"
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_reaches_a_file_and_heading(page: Path) -> None:
    broken = []
    for number, target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        where = f"{page.relative_to(ROOT)}:{number}: {target}"
        if not resolved.is_relative_to(ROOT) or not resolved.exists():
            broken.append(f"{where} (no such file)")
        elif anchor and (resolved.suffix != ".md" or anchor not in anchors(resolved)):
            broken.append(f"{where} (no such heading)")
    assert broken == []
