"""The mutant zoo: each ``NAME.py`` here is the reference server with one realistic defect.

Each mutant states its defect in the first line of its docstring, names in ``SCENARIO`` the
scenario its defect belongs to, and in ``CAUGHT_BY`` what that scenario must report: anomaly kinds,
or ``check:NAME`` for a scenario check whose name contains NAME (an empty tuple marks a correct
variant, which must pass); ``NAME.toml`` is its target file. Nothing here imports the
mutants (importing one must not install its defect): they are read with ``ast``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from harness.target import Target, load_target

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Mutant:
    """One broken server."""

    name: str
    defect: str
    scenario: str
    target_file: Path
    caught_by: tuple[str, ...] = ()

    def target(self) -> Target:
        """Its target description."""
        return load_target(self.target_file)


def _constant(tree: ast.Module, name: str) -> object:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise ValueError(f"no {name} constant")


def mutants() -> list[Mutant]:
    """Every mutant in the zoo, by name."""
    out = []
    for path in sorted(HERE.glob("*.py")):
        if path.name in ("__init__.py", "zoo.py"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        defect = (ast.get_docstring(tree) or "").splitlines()[0]
        scenario, caught_by = _constant(tree, "SCENARIO"), _constant(tree, "CAUGHT_BY")
        assert isinstance(scenario, str) and isinstance(caught_by, tuple), path
        out.append(Mutant(path.stem, defect, scenario, path.with_suffix(".toml"), caught_by))
    return out


def mutant(name: str) -> Mutant:
    """One mutant by name."""
    return next(m for m in mutants() if m.name == name)
