"""Read a config file: YAML to plain data, ``${VAR}`` interpolation, and a line for every key.

Problems are collected, not raised one at a time, so ``llm-edge-agent check`` can report every
mistake in one run, each as ``file:line: dotted.path: message``. Nothing here ever puts a
scalar's *value* into a message: the value might be an API key.

Interpolation rules (documented in the README's configuration reference):

* ``${VAR}`` is replaced by the environment variable's value; unset is a problem.
* ``${VAR:-default}`` uses ``default`` when ``VAR`` is unset or empty (shell semantics);
  ``${VAR:-}`` is how a config says "empty is fine".
* ``$${`` is a literal ``${``.
* Only values are interpolated, never keys. The result is a string; where the schema expects
  a number or a boolean, :func:`proxy.config.validate.coerce_env_values` converts it, so
  ``max_retries: ${RETRIES:-3}`` is the integer 3.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PathParts = tuple[str | int, ...]

_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}?")
# YAML ends a plain scalar at "{" or "}" inside a flow collection, so the contract's own
# example ``{type: openai, api_key: ${OPENAI_API_KEY}}`` would not parse. Each reference is
# swapped for an inert private-use token before parsing and swapped back in every scalar.
_PROTECT = re.compile(r"\$?\$\{[^}\n]*\}")
_TOKEN = re.compile("\ue000([0-9]+)\ue001")
_MAX_NODES = 200_000
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def dotted(parts: PathParts) -> str:
    """``("models", "gpt-4", "aliases", 0)`` -> ``models.gpt-4.aliases[0]``."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


@dataclass(frozen=True)
class Problem:
    """One mistake in a config file; ``str()`` gives the line ``check`` prints."""

    path: str
    line: int | None
    message: str
    source: str = "config.yaml"

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    """A config that cannot be loaded; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass
class LineIndex:
    """Where each key sits in the file, and which values came from the environment.

    A mapping entry's line is its key's line (a block mapping's value starts a line later,
    but the key is what a reader looks for); a sequence item's line is the item's own.
    """

    source: str = "config.yaml"
    lines: dict[PathParts, int] = field(default_factory=dict)
    from_env: set[PathParts] = field(default_factory=set)

    def line(self, path: PathParts | str) -> int | None:
        """The line of ``path`` or, failing that, of its nearest ancestor in the file."""
        if isinstance(path, str):
            by_text = {dotted(parts): line for parts, line in self.lines.items()}
            return by_text.get(path)
        parts = tuple(path)
        while parts:
            if parts in self.lines:
                return self.lines[parts]
            parts = parts[:-1]
        return self.lines.get(())

    def problem(self, path: PathParts, message: str) -> Problem:
        return Problem(dotted(path), self.line(path), message, self.source)


class _Loader(yaml.SafeLoader):
    """SafeLoader without the timestamp resolver: ``as_of: 2024-11-20`` stays a string."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def interpolate(text: str, environ: Mapping[str, str]) -> tuple[str, list[str]]:
    """Expand references in ``text``; also return one message per unusable reference."""
    errors: list[str] = []

    def expand(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        body = match.group(1)
        if not match.group(0).endswith("}"):
            errors.append("unterminated '${' (write '$${' for a literal '${')")
            return ""
        name, sep, default = body.partition(":-")
        if not _NAME.fullmatch(name):
            # Not echoed: a key pasted inside ${...} by mistake must not reach the output.
            errors.append("invalid reference: expected ${VAR} or ${VAR:-default}")
            return ""
        value = environ.get(name)
        if sep and not value:
            return default
        if value is None:
            errors.append(
                f"environment variable {name} is not set (write ${{{name}:-}} to allow it)"
            )
            return ""
        return value

    return _REFERENCE.sub(expand, text), errors


class _TooLarge(yaml.YAMLError):
    pass


class _Builder:
    """Turns a composed node graph into plain data, recording lines and problems."""

    def __init__(
        self, loader: _Loader, environ: Mapping[str, str], index: LineIndex, refs: list[str]
    ) -> None:
        self.loader = loader
        self.refs = refs
        self.environ = environ
        self.index = index
        self.problems: list[Problem] = []
        self._active: set[int] = set()
        self._budget = _MAX_NODES

    def build(self, node: yaml.Node, path: PathParts) -> Any:
        self._budget -= 1
        if self._budget < 0:  # aliases can make a small file expand exponentially
            raise _TooLarge(f"more than {_MAX_NODES} values after alias expansion")
        return self._build(node, path)

    def _build(self, node: yaml.Node, path: PathParts) -> Any:
        if id(node) in self._active:
            self.problems.append(self.index.problem(path, "recursive alias"))
            return None
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            if isinstance(node, yaml.SequenceNode):
                return [self._item(child, (*path, i)) for i, child in enumerate(node.value)]
            return self._scalar(node, path)
        finally:
            self._active.discard(id(node))

    def _item(self, node: yaml.Node, path: PathParts) -> Any:
        self.index.lines.setdefault(path, node.start_mark.line + 1)
        return self.build(node, path)

    def _mapping(self, node: yaml.MappingNode, path: PathParts) -> dict[str, Any]:
        self._check_duplicates(node, path)
        self.loader.flatten_mapping(node)  # merge keys (<<: *anchor) first, own keys after
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append(
                    Problem(dotted(path), line, "keys must be plain names", self.index.source)
                )
                continue
            key = self._restore(str(key_node.value))
            child = (*path, key)
            self.index.lines[child] = line  # a later (own) key overrides a merged one
            result[key] = self.build(value_node, child)
        return result

    def _check_duplicates(self, node: yaml.MappingNode, path: PathParts) -> None:
        """PyYAML silently keeps the last of two equal keys; a config author wants to know."""
        seen: dict[str, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key, line = self._restore(str(key_node.value)), key_node.start_mark.line + 1
            if key in seen:
                message = f"duplicate key '{key}' (first on line {seen[key]})"
                self.problems.append(
                    Problem(dotted((*path, key)), line, message, self.index.source)
                )
            seen.setdefault(key, line)

    def _scalar(self, node: yaml.Node, path: PathParts) -> Any:
        value = self.loader.construct_object(node, deep=True)
        if not isinstance(value, str) or "$" not in (value := self._restore(value)):
            return value
        expanded, errors = interpolate(value, self.environ)
        self.problems.extend(self.index.problem(path, message) for message in errors)
        if "${" in value.replace("$${", ""):
            self.index.from_env.add(path)
        return expanded

    def _restore(self, text: str) -> str:
        """Put back the references :func:`parse` swapped out (a no-op without any)."""
        if "\ue000" not in text:
            return text
        return _TOKEN.sub(lambda m: self.refs[int(m.group(1))], text)


def _syntax_problem(exc: yaml.YAMLError, source: str) -> Problem:
    """The line and the parser's short complaint; never the snippet, which may hold a key."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        detail = "; ".join(p for p in (exc.context, exc.problem) if p)
        return Problem("", line, f"YAML syntax error: {detail}", source)
    if isinstance(exc, _TooLarge):
        return Problem("", None, str(exc), source)
    return Problem("", None, f"YAML syntax error: {type(exc).__name__}", source)


def parse(
    text: str, environ: Mapping[str, str], source: str = "config.yaml"
) -> tuple[Any, LineIndex, list[Problem]]:
    """Parse YAML ``text``: its data, line index and problems (syntax, interpolation)."""
    index = LineIndex(source=source)
    refs: list[str] = []

    def protect(match: re.Match[str]) -> str:
        refs.append(match.group(0))
        return f"\ue000{len(refs) - 1}\ue001"

    loader = _Loader(_PROTECT.sub(protect, text))
    try:
        node = loader.get_single_node()
        if node is None:
            return None, index, [Problem("", 1, "the file is empty", source)]
        index.lines[()] = node.start_mark.line + 1
        builder = _Builder(loader, environ, index, refs)
        data = builder.build(node, ())
    except yaml.YAMLError as exc:
        return None, index, [_syntax_problem(exc, source)]
    finally:
        loader.dispose()
    return data, index, builder.problems


def read_document(
    path: Path, environ: Mapping[str, str]
) -> tuple[bytes, dict[str, Any] | None, LineIndex, list[Problem]]:
    """The file's bytes (hashed for the config version), its data or None if unusable, etc."""
    source = str(path)
    try:
        raw = Path(path).read_bytes()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        return (
            b"",
            None,
            LineIndex(source=source),
            [Problem("", None, f"cannot read: {reason}", source)],
        )
    data, index, problems = parse(text, environ, source)
    if data is not None and not isinstance(data, dict):
        problems.append(Problem("", index.line(()), "the top level must be a mapping", source))
        data = None
    return raw, data, index, problems


def load_document(
    path: Path, environ: Mapping[str, str]
) -> tuple[dict[str, Any], LineIndex, list[Problem]]:
    """Read and parse ``path``. The data is ``{}`` whenever the problems make it unusable."""
    _, data, index, problems = read_document(path, environ)
    return data or {}, index, problems


def walk(data: Any, path: PathParts = ()) -> Iterator[tuple[PathParts, Any]]:
    """Every (path, value) in ``data``, depth first."""
    yield path, data
    if isinstance(data, dict):
        for key, value in data.items():
            yield from walk(value, (*path, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from walk(value, (*path, i))
