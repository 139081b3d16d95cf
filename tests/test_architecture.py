"""House rules of the layout, checked on the source (DESIGN.md, "Architecture")."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "genecommons"
DATABASE = ("sqlalchemy", "alembic")


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


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
