"""Helpers for the static checks of the deployment files (no Docker engine, no network needed).

The test modules reach these through fixtures (pytest runs with --import-mode=importlib, so test
files do not import each other).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------------------------
# Dockerfile parsing (enough of the syntax for a linter: continuations, comments, stages, flags)
# ---------------------------------------------------------------------------------------------
@dataclass
class Instruction:
    keyword: str
    args: str
    line: int

    @property
    def exec_form(self) -> list[str] | None:
        """The JSON-array form of CMD/ENTRYPOINT/RUN (or HEALTHCHECK's CMD), else None."""
        text = self.args
        if self.keyword == "HEALTHCHECK":
            text = re.sub(r"^(--\S+\s+)*", "", text)
            if not text.startswith("CMD"):
                return None
            text = text[3:].strip()
        if text.startswith("["):
            value = json.loads(text)
            assert isinstance(value, list) and all(isinstance(v, str) for v in value), self
            return value
        return None

    def flags(self) -> dict[str, str]:
        """Leading --name=value flags (COPY --from=..., HEALTHCHECK --interval=...)."""
        return dict(re.findall(r"--([\w-]+)=(\S+)", re.match(r"^((?:--\S+\s+)*)", self.args).group(1)))

    def words(self) -> list[str]:
        """Arguments after the flags, split like a shell would."""
        rest = re.sub(r"^(--\S+\s+)*", "", self.args)
        return shlex.split(rest)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        """ENV key=value pairs of this stage (later ones win)."""
        out: dict[str, str] = {}
        for ins in self.all("ENV"):
            for key, value in _env_pairs(ins.args):
                out[key] = value
        return out


@dataclass
class Dockerfile:
    path: Path
    global_args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def resolve(self, text: str) -> str:
        """Substitute ARGs declared before the first FROM (their defaults)."""
        return re.sub(r"\$\{?(\w+)\}?", lambda m: self.global_args.get(m.group(1), m.group(0)), text)

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    @property
    def text(self) -> str:
        return self.path.read_text()


def _env_pairs(args: str) -> list[tuple[str, str]]:
    words = shlex.split(args)
    if words and "=" not in words[0]:  # legacy `ENV KEY value`
        return [(words[0], " ".join(words[1:]))]
    return [tuple(w.split("=", 1)) for w in words]  # type: ignore[misc]


def parse_dockerfile(path: Path) -> Dockerfile:
    logical: list[tuple[int, str]] = []
    buf, start = "", 0
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped by Docker too
        if not buf:
            start = number
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        logical.append((start, (buf + stripped).strip()))
        buf = ""
    assert not buf, f"{path}: dangling line continuation"

    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line, text in logical:
        keyword, _, args = text.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            parts = args.split()
            parts = [p for p in parts if not p.startswith("--platform")]
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=parts[0], name=name))
            continue
        if not stages:
            assert keyword == "ARG", f"{path}:{line}: only ARG may precede the first FROM"
            key, _, default = args.partition("=")
            global_args[key] = default
            continue
        stages[-1].instructions.append(Instruction(keyword, args, line))
    return Dockerfile(path=path, global_args=global_args, stages=stages)


# ---------------------------------------------------------------------------------------------
# Path patterns
# ---------------------------------------------------------------------------------------------
def _glob_regex(pattern: str) -> str:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return out


def _ancestors_and_self(path: str) -> list[str]:
    parts = path.strip("/").split("/")
    return ["/".join(parts[: n + 1]) for n in range(len(parts))]


def gitignore_match(pattern: str, path: str) -> bool:
    """Does a gitignore-style pattern (Railway watch paths use these) match a repository path?

    A pattern with a slash at the start or in the middle is anchored at the repository root;
    one without matches at any depth. A pattern that matches a directory matches its contents.
    """
    body = pattern.rstrip("/")
    anchored = body.startswith("/") or "/" in body
    regex = _glob_regex(body.lstrip("/"))
    regex = ("^" if anchored else "^(?:.*/)?") + regex + "$"
    return any(re.match(regex, candidate) for candidate in _ancestors_and_self(path))


def dockerignore_excluded(patterns: list[str], path: str) -> bool:
    """Is a context path excluded by .dockerignore (anchored patterns, `**`, `!` exceptions)?"""
    excluded = False
    for raw in patterns:
        negate = raw.startswith("!")
        body = raw[1:] if negate else raw
        regex = "^" + _glob_regex(body.strip("/")) + "$"
        if any(re.match(regex, candidate) for candidate in _ancestors_and_self(path)):
            excluded = not negate
    return excluded


def read_env_names(path: Path) -> dict[str, str | None]:
    """Variables documented in an env file: `NAME=value` (active) or `# NAME=value` (a default).

    Returns name -> value for active lines, name -> None for documented-but-commented ones.
    """
    names: dict[str, str | None] = {}
    for line in path.read_text().splitlines():
        active = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line)
        if active:
            names[active.group(1)] = active.group(2)
            continue
        commented = re.match(r"^#\s?([A-Z][A-Z0-9_]*)=", line)
        if commented:
            names.setdefault(commented.group(1), None)
    return names


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def dockerfiles() -> dict[str, Dockerfile]:
    return {svc: parse_dockerfile(REPO / svc / "Dockerfile") for svc in ("etl-service", "api-service")}


@pytest.fixture(scope="session")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


@pytest.fixture(scope="session")
def dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


@pytest.fixture(scope="session")
def helpers() -> dict[str, Callable]:
    return {
        "gitignore_match": gitignore_match,
        "dockerignore_excluded": dockerignore_excluded,
        "read_env_names": read_env_names,
        "parse_dockerfile": parse_dockerfile,
    }
