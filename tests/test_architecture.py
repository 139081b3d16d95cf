"""House rules of the layout, checked on the source (DESIGN.md, "Architecture")."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "genecommons"
WEB = ("fastapi", "starlette")
DATABASE = ("sqlalchemy", "alembic")
# Pure modules: domain types and algorithms, no web or database imports.
PURE = [
    "models.py",
    "report.py",
    "vocabularies.py",
    "phenopackets.py",
    "bundle.py",
    "validation.py",
    "export.py",
    "policy.py",
    "merkle.py",
    "sth.py",
    "duo_matching.py",
    "identity.py",
    "reports.py",
    "passports.py",
    "keys.py",
    "oidc.py",
    "rules.py",
    "codes.py",
    "relational.py",
    "trace.py",
    "leaksim.py",
    "genotypes.py",
    "vcf_blocks.py",
    "answers.py",
    "beacon_guard.py",
    "cells.py",
    "attack.py",
    "dp.py",
    "beacon.py",
    "normalize.py",
    "counts.py",
    "alerts.py",
    "bounded.py",
]


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_pure_modules_import_neither_web_nor_database() -> None:
    checked = 0
    for path in PACKAGE.rglob("*.py"):
        if path.name in PURE:
            checked += 1
            bad = {n for n in imports_of(path) if n.split(".")[0] in WEB + DATABASE}
            assert not bad, f"{path.relative_to(PACKAGE)} imports {sorted(bad)}"
    assert checked >= 6


def test_routes_and_commands_never_touch_tables() -> None:
    for path in [*PACKAGE.rglob("routes.py"), *PACKAGE.rglob("commands.py")]:
        bad = {n for n in imports_of(path) if n.endswith(".tables") or n.split(".")[0] in DATABASE}
        assert not bad, f"{path.relative_to(PACKAGE)} imports {sorted(bad)}"


def test_only_config_reads_the_environment() -> None:
    for path in PACKAGE.rglob("*.py"):
        if path.name == "config.py":
            continue
        text = path.read_text(encoding="utf-8")
        assert "os.environ" not in text and "getenv(" not in text, path


def test_only_the_edges_draw_on_the_terminal() -> None:
    """Cores report progress through `genecommons.progress`; rich is for the CLI's edges."""
    edges = {"commands.py", "cli.py", "progress_bars.py"}
    for path in PACKAGE.rglob("*.py"):
        if path.name in edges:
            continue
        bad = {n for n in imports_of(path) if n.split(".")[0] == "rich"}
        assert not bad, f"{path.relative_to(PACKAGE)} imports {sorted(bad)}"


WALL_CLOCK = {("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today")}
WALL_CLOCK |= {("time", "time"), ("time", "time_ns")}


def wall_clock_reads(path: Path) -> list[int]:
    """The lines of `path` that read the wall clock other than through `clock.now()`."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and (node.func.value.id, node.func.attr) in WALL_CLOCK
        ):
            lines.append(node.lineno)
    return lines


def test_the_wall_clock_is_read_through_clock_now() -> None:
    """Every moment of an event comes from `genecommons.clock.now()` (monotonic timers aside),
    so that time is read in one place."""
    found = {
        str(path.relative_to(PACKAGE)): wall_clock_reads(path)
        for path in PACKAGE.rglob("*.py")
        if path.name != "clock.py"
    }
    assert {name: lines for name, lines in found.items() if lines} == {}


def test_the_wall_clock_check_sees_each_form(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "t = time.time()\nd = datetime.now(UTC)\nu = datetime.utcnow()\nm = time.monotonic()\n",
        encoding="utf-8",
    )
    assert wall_clock_reads(module) == [1, 2, 3]


def test_the_archive_never_imports_fingerprint() -> None:
    """Data flows one way: the archive delivers, fingerprint marks copies and traces leaks.
    Delivery reaches fingerprint through the interface the archive declares
    (`archive.recipient_copies`); the one import left is of a table (the orphan check reads
    the copies' objects), which goes when capabilities stop reading each other's tables."""
    checked = 0
    for path in (PACKAGE / "archive").rglob("*.py"):
        checked += 1
        bad = {
            n
            for n in imports_of(path)
            if n.startswith("genecommons.fingerprint") and n != "genecommons.fingerprint.tables"
        }
        assert not bad, f"{path.relative_to(PACKAGE)} imports {sorted(bad)}"
    assert checked >= 10
