"""The capabilities' boundaries ([tool.importlinter] in pyproject.toml), checked by import-linter:
kept by the code as it is, and broken, naming the rule, by an import across a boundary."""

from __future__ import annotations

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
    source = tmp_path / "src"
    shutil.copytree(
        ROOT / "src" / "genecommons",
        source / "genecommons",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    target = source / "genecommons" / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{line}  # noqa\n", encoding="utf-8")
    done = lint_imports(source)
    assert done.returncode != 0, done.stdout[-3000:]
    broken = done.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, done.stdout[-5000:]
