"""An in-tree tox plugin (tox loads ``toxfile.py`` by itself): let tox find every installed CPython.

pyenv puts shims such as ``python3.10`` on PATH that refuse to run a version that is not the
selected one, so tox would quietly skip those environments. Before tox looks for interpreters,
this appends each pyenv version's own ``bin`` directory to PATH (after everything already there,
so the interpreters a user selected keep precedence). Without pyenv it does nothing.

An in-tree hook rather than a published plugin (``tox-pyenv-redux``, which also needs an older
virtualenv pinned) because it has no dependency that can break on the next virtualenv release.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

from tox.plugin import impl


def pyenv_bins() -> list[str]:
    """Every pyenv version's bin directory, newest versions last."""
    root = os.environ.get("PYENV_ROOT")
    if not root:
        try:
            root = subprocess.run(
                ["pyenv", "root"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            root = str(Path.home() / ".pyenv")
    versions = Path(root, "versions")
    if not versions.is_dir():
        return []
    found = [p for p in versions.glob("*") if (p / "bin").is_dir()]
    return [str(p / "bin") for p in sorted(found, key=lambda p: [int(n) for n in re.findall(r"\d+", p.name)])]


@impl
def tox_add_option(parser: Any) -> None:
    """The first hook tox calls: extend PATH before any interpreter is looked for."""
    path = os.environ.get("PATH", "").split(os.pathsep)
    extra = [b for b in pyenv_bins() if b not in path]
    if extra:
        os.environ["PATH"] = os.pathsep.join([*path, *extra])
