"""What the code imports at run time is what the package declares. Each command's imports run
in a Python where every installed library that ``pyproject.toml``'s dependencies do not bring
(following the installed packages' own requirements, extras matched as pip 23 matches them,
literally) is hidden: what a plain ``pip install .`` would lack makes the test fail."""

from __future__ import annotations

import importlib.metadata as md
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent
_EXTRA = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")

# What each command imports (its heavy libraries load lazily, inside the command).
COMMANDS = {
    "import": "import chatbot.importer, trafilatura, defusedxml, justext",
    "serve": "import chatbot.server, chatbot.api, chatbot.app",
    "index": "import chatbot.embedding, faiss, bm25s, Stemmer, spacy, sentence_transformers",
}

HIDE = """
import importlib.abc, importlib.util, sys
HIDDEN = set({hidden!r})
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not declared)", name=name)
        return None
sys.meta_path.insert(0, Hide())
_find_spec = importlib.util.find_spec  # "is it installed?" answered as a plain install would
importlib.util.find_spec = lambda name, package=None: (
    None if name.split(".")[0] in HIDDEN else _find_spec(name, package))
{code}
"""


def _wanted(line: str, extras: frozenset[str]) -> Requirement | None:
    requirement = Requirement(line)
    marker = requirement.marker
    if marker is not None:
        extra = _EXTRA.search(str(marker))
        if extra is not None and extra.group(1) not in extras:
            return None  # pip 23 matches an extra's name as written
        if not marker.evaluate({"extra": extra.group(1) if extra else ""}):
            return None
    requirement.marker = None
    return requirement


def reachable(requirements: list[str]) -> set[str]:
    """The installed distributions that ``requirements`` bring, following each one's metadata."""
    seen: set[tuple[str, frozenset[str]]] = set()
    names: set[str] = set()
    todo = [r for r in (_wanted(line, frozenset()) for line in requirements) if r is not None]
    while todo:
        requirement = todo.pop()
        name, extras = canonicalize_name(requirement.name), frozenset(requirement.extras)
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        names.add(name)
        todo.extend(r for r in (_wanted(line, extras) for line in dist.requires or []) if r is not None)
    return names


def hidden_modules(allowed: set[str]) -> set[str]:
    """Top-level modules installed here by a distribution outside ``allowed``."""
    owners = md.packages_distributions()
    return {
        module
        for module, dists in owners.items()
        if not any(canonicalize_name(d) in allowed or canonicalize_name(d) == "chatbot" for d in dists)
    }


def test_the_check_hides_what_is_not_declared() -> None:
    allowed = reachable(["numpy>=2"])
    assert "numpy" in allowed and "faiss" in hidden_modules(allowed)
    assert "lxml-html-clean" not in reachable(["justext"]) or md.version("lxml") < "5.2"  # pip 23's reading


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_library_a_command_loads_comes_with_a_plain_install(command: str) -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    script = HIDE.format(hidden=sorted(hidden_modules(reachable(declared))), code=COMMANDS[command])
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert run.returncode == 0, f"`chatbot {command}` needs what pyproject.toml does not declare:\n{run.stderr[-1500:]}"
