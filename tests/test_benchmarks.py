"""The benchmark scripts are not run in CI (they take minutes to hours), so check here
that each still imports against the package (imports sit at module level) and prints its help."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = sorted(BENCHMARKS.glob("bench_*.py"))


def test_there_are_benchmarks():
    assert len(SCRIPTS) >= 5


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.stem)
def test_benchmark_imports_and_prints_help(script: Path):
    helped = subprocess.run(
        [sys.executable, script.name, "--help"],
        cwd=BENCHMARKS,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert helped.returncode == 0, helped.stderr[-2000:]
    assert "usage" in helped.stdout
