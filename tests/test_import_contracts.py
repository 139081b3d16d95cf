"""The capabilities' boundaries ([tool.importlinter] in pyproject.toml), checked by import-linter:
kept by the code as it is, and broken, naming the rule, by an import across a boundary."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(source: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports with the project's contracts over the package under `source`."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=source.parent,
        env={**os.environ, "PYTHONPATH": str(source)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def package_copy(tmp_path: Path, module: str) -> tuple[Path, Path]:
    """A copy of the package under `tmp_path`/src, and the path of its `module` there (for a
    test to plant an import in)."""
    source = tmp_path / "src"
    shutil.copytree(
        ROOT / "src" / "genecommons",
        source / "genecommons",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return source, source / "genecommons" / module


def test_the_code_keeps_every_contract() -> None:
    done = lint_imports(ROOT / "src")
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    assert " broken" in done.stdout and "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        # the catalog reaching up into privacy
        ("catalog/export.py", "import genecommons.privacy.dp", "Capabilities in layers"),
        # privacy reading the catalog's tables instead of its published reads
        (
            "privacy/dp.py",
            "from genecommons.catalog.tables import ENTITY_TABLES",
            "catalog's tables are its own",
        ),
        # the foundation reaching a capability
        ("clock.py", "import genecommons.audit.service", "The foundation imports no capability"),
        # a pure module importing the database
        ("variants/counts.py", "import sqlalchemy", "Pure modules"),
    ],
)
def test_an_import_across_a_boundary_fails_naming_the_rule(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    source, target = package_copy(tmp_path, module)
    target.write_text(target.read_text(encoding="utf-8") + f"\n{line}  # noqa\n", encoding="utf-8")
    done = lint_imports(source)
    assert done.returncode != 0, done.stdout[-3000:]
    broken = done.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, done.stdout[-5000:]


# The import cycles of the package on PYTHONPATH (grimp, import-linter's own graph): between
# files, and between capability packages (each taken as one; the app's and the CLI's wiring,
# deps.py, services.py, runtime.py, which the routes and commands import, is not a capability),
# as JSON.
CYCLES = """
import json, sys
import grimp

graph = grimp.build_graph("genecommons", cache_dir=None)

def strongly_connected(edges):
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = counter[0]; counter[0] += 1; stack.append(v); on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop(); on.discard(w); part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                found.append(sorted(part))
    sys.setrecursionlimit(10000)
    for v in list(edges):
        if v not in index:
            visit(v)
    return found

files = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
CAPABILITIES = {"catalog", "access", "archive", "variants", "privacy", "fingerprint", "audit",
                "compliance"}
def capability(module):
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 and parts[1] in CAPABILITIES else None
packages = {}
for module, imported in files.items():
    if capability(module) is None:
        continue
    packages.setdefault(capability(module), set()).update(
        capability(m) for m in imported if capability(m) not in (None, capability(module))
    )
print(json.dumps({"files": strongly_connected(files), "packages": strongly_connected(packages)}))
"""


def import_cycles(source: Path) -> dict[str, list[list[str]]]:
    """The import cycles of the package under `source`, between files and between packages."""
    done = subprocess.run(
        [sys.executable, "-c", CYCLES],
        env={**os.environ, "PYTHONPATH": str(source)},
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    found: dict[str, list[list[str]]] = json.loads(done.stdout)
    return found


def test_no_import_cycle_between_files_or_capabilities() -> None:
    assert import_cycles(ROOT / "src") == {"files": [], "packages": []}


@pytest.mark.parametrize(
    ("module", "imported", "kind", "cycle"),
    [
        # sealed_store imports sealed: the other way round closes a cycle between files
        (
            "variants/sealed.py",
            "genecommons.variants.sealed_store",
            "files",
            ["genecommons.variants.sealed", "genecommons.variants.sealed_store"],
        ),
        # access reads the catalog: the catalog reaching access closes one between capabilities
        (
            "catalog/export.py",
            "genecommons.access.workflow",
            "packages",
            ["genecommons.access", "genecommons.catalog"],
        ),
    ],
)
def test_the_cycle_check_sees_a_cycle(
    tmp_path: Path, module: str, imported: str, kind: str, cycle: list[str]
) -> None:
    source, target = package_copy(tmp_path, module)
    target.write_text(  # inside a function: a late import is an import all the same
        target.read_text(encoding="utf-8")
        + f"\n\ndef _late() -> None:\n    import {imported}  # noqa\n",
        encoding="utf-8",
    )
    assert cycle in import_cycles(source)[kind]
