"""The layer contract, checked on every import in the package (function-level ones included):
each stage imports only from the stages below it, and only the CLI knows typer and rich."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cpbench"

# top to bottom; packages on one line are siblings and must not import each other
LAYERS: list[tuple[str, ...]] = [
    ("cli",),
    ("report",),
    ("optimize",),
    ("fitting", "anynet"),  # anynet: the any-network model, beside the family's fits
    ("export", "timing"),
    ("workspace",),
    ("counting", "family"),
    ("errors", "units", "__init__"),
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
PRESENTATION = ("typer", "rich", "click")


def _box(module: str) -> str:
    """cpbench.fitting.time_models -> 'fitting'; cpbench.errors -> 'errors'; cpbench -> '__init__'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            if node.module == "cpbench":  # from cpbench import x: x may be a subpackage
                found += [(node.lineno, f"cpbench.{alias.name}") for alias in node.names if alias.name != "__version__"]
    return found


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        out.append((".".join(relative.parts), path))
    return out


def test_every_module_sits_in_a_known_layer():
    unknown = sorted({_box(name) for name, _ in _modules()} - set(RANK))
    assert not unknown, f"modules outside the layer contract: {unknown}; add them to LAYERS"


def test_no_stage_imports_a_stage_above_it_or_a_sibling():
    violations = []
    for name, path in _modules():
        box = _box(name)
        for line, imported in _imports(path):
            if not imported.startswith("cpbench.") or _box(imported) == box:
                continue
            target = _box(imported)
            if RANK[target] < RANK[box] or (RANK[target] == RANK[box]):
                violations.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({box}) imports {imported} ({target})")
    assert not violations, "layer contract broken:\n" + "\n".join(violations)


def test_only_the_cli_imports_typer_or_rich():
    violations = []
    for name, path in _modules():
        if _box(name) == "cli":
            continue
        for line, imported in _imports(path):
            if imported.split(".")[0] in PRESENTATION:
                violations.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {imported}")
    assert not violations, "presentation outside the CLI:\n" + "\n".join(violations)


@pytest.mark.parametrize("source, expected", [
    ("from cpbench.cli.app import main\n", "cpbench.cli.app"),
    ("def f():\n    from cpbench.report import plots\n", "cpbench.report"),
])
def test_the_checker_sees_nested_and_top_level_imports(tmp_path, source, expected):
    path = tmp_path / "m.py"
    path.write_text(source)
    assert expected in [name for _, name in _imports(path)]


def test_no_module_holds_more_than_one_room_of_code():
    """Each module holds one job; past 400 lines it is holding several and is split."""
    crowded = [f"{path.relative_to(PACKAGE.parent)}: {n} lines" for _, path in _modules()
               if (n := len(path.read_text(encoding="utf-8").splitlines())) > 400]
    assert not crowded, "modules over 400 lines:\n" + "\n".join(crowded)


HISTORY = re.compile(r"\bstops? \d+\b|this project's|\.\./shared|\bissue \d+|\(issue|review §", re.IGNORECASE)


def test_the_readme_stays_a_five_minute_read():
    assert len((PACKAGE.parent / "README.md").read_text(encoding="utf-8").splitlines()) <= 250


def test_the_product_never_narrates_its_own_development():
    """Docstrings, comments, profiles, tests, benchmarks and docs say what the code does and why,
    never in which step, issue or sitting it was made, nor on which project machine."""
    root = PACKAGE.parent
    files = [p for folder in ("cpbench", "profiles", "tests", "benchmarks", "docs") for p in (root / folder).rglob("*")
             if p.suffix in (".py", ".toml", ".md", ".html", ".j2") and p.name != Path(__file__).name]
    files.append(root / "README.md")
    found = [f"{p.relative_to(root)}:{n}: {line.strip()[:80]}" for p in files
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if HISTORY.search(line)]
    assert not found, "\n".join(found)
