"""The project's own code is ruff clean and formatted (ruff pinned in pyproject)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("compiler", "tests", "examples", "scripts", "benchmarks")
CODE = [p for p in PACKAGES if (ROOT / p).is_dir()]


def _ruff(*args: str) -> subprocess.CompletedProcess:
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    return subprocess.run([ruff, *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff_check():
    run = _ruff("check", *CODE)
    assert run.returncode == 0, run.stdout + run.stderr


def test_ruff_format():
    run = _ruff("format", "--check", *CODE)
    assert run.returncode == 0, run.stdout + run.stderr
