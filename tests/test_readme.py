"""The README stays true: its target examples are the files in examples/ and they load."""

from __future__ import annotations

import re
from pathlib import Path

from harness.target import parse_target

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent


def test_readme_target_examples_match_the_example_files() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", readme, re.S)
    files = {p.name: tomllib.loads(p.read_text(encoding="utf-8")) for p in (ROOT / "examples").glob("*.toml")}
    assert len(blocks) == 2
    for block in blocks:
        data = tomllib.loads(block)
        assert data in files.values(), f"README block for {data['name']} differs from examples/"
        parse_target(data, "README.md", ROOT / "examples")


def test_readme_opens_with_the_two_commands() -> None:
    head = (ROOT / "README.md").read_text(encoding="utf-8").split("```")[1]
    assert "pip install . && python3 -m harness run --all" in head
    assert "pip install tox && python3 -m tox" in head
