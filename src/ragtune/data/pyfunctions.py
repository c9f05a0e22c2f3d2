"""Functions of a Python source file, with their docstring summary and their code without it.

The raw material of the code-search dataset (:mod:`ragtune.data.codesearch`): for every function
or method defined at module level or inside classes (not functions nested in functions, which a
user cannot call or look up by name) :func:`extract_functions` gives the code exactly as written,
decorators included, with the docstring lines removed and the common indentation stripped.
:func:`summarise` turns a docstring into a search query: its first sentence.
"""

from __future__ import annotations

import ast
import re
import textwrap
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

DropReason = str  # a key of the build statistics, e.g. "trivial_body"


@dataclass(frozen=True)
class PyFunction:
    """One function as found in a file; ``docstring`` is None when it has none."""

    qualname: str
    start_line: int  # first decorator line, or the ``def`` line
    end_line: int
    code: str  # without the docstring, dedented
    docstring: str | None
    body_lines: int  # non-blank, non-comment lines after the signature, docstring excluded
    problem: DropReason | None  # why the code cannot be a document, if it cannot


def parse_source(source: str, filename: str) -> ast.Module | None:
    """The module's syntax tree, or None for files that are not valid Python of this version."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escape sequences in old code: not our business
        try:
            return ast.parse(source, filename=filename)
        except (SyntaxError, ValueError):
            return None


_NEWLINE = re.compile(r"\r\n|\r|\n")


def ast_lines(source: str) -> list[str]:
    """The lines of ``source`` as :mod:`ast` numbers them.

    Why not ``str.splitlines``: it also breaks at form feeds, vertical tabs and ``\u2028``,
    which Python code may hold inside a line (a form feed between sections is an old Emacs
    habit), and every function after such a line would then be cut from the wrong lines."""
    lines = _NEWLINE.split(source)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def extract_functions(tree: ast.Module, source: str) -> tuple[list[PyFunction], int]:
    """Top-level functions and methods in source order, and the number of nested ones skipped."""
    lines = ast_lines(source)
    found: list[PyFunction] = []
    nested = 0

    def visit(node: ast.AST, prefix: str, in_function: bool) -> None:
        nonlocal nested
        for child in _child_statements(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                if in_function:
                    nested += 1
                else:
                    found.append(_function(child, prefix + child.name, lines))
                visit(child, prefix + child.name + ".<locals>.", True)
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".", in_function)
            else:  # if/try/with/for blocks can define functions too
                visit(child, prefix, in_function)

    visit(tree, "", False)
    return found, nested


_BLOCKS = frozenset({"body", "orelse", "finalbody", "handlers", "cases"})


def _child_statements(node: ast.AST) -> Iterator[ast.stmt]:
    """The statements directly inside ``node`` (definitions are statements, never expressions)."""
    for name in node._fields:  # in field order, which is source order (try: body, handlers...)
        for item in getattr(node, name) if name in _BLOCKS else ():
            if isinstance(item, ast.stmt):
                yield item
            elif isinstance(item, ast.ExceptHandler | ast.match_case):
                yield from item.body


def _function(
    node: ast.FunctionDef | ast.AsyncFunctionDef, qualname: str, lines: list[str]
) -> PyFunction:
    start = min([d.lineno for d in node.decorator_list] + [node.lineno])
    end = node.end_lineno or node.lineno
    docstring = ast.get_docstring(node, clean=True)
    body = node.body
    kept = list(range(start, end + 1))
    problem: DropReason | None = None
    if docstring is not None:
        doc = body[0]
        doc_end = doc.end_lineno or doc.lineno
        alone = lines[doc.lineno - 1][: doc.col_offset].strip() == "" and (
            len(body) == 1 or body[1].lineno > doc_end
        )
        if not alone or doc.lineno == node.lineno:
            problem = "inline_docstring"  # shares a line with code: cannot be cut out cleanly
        kept = [n for n in kept if not doc.lineno <= n <= doc_end]
        # Blank lines that separated the docstring from the code go with it.
        after = doc_end + 1
        while after <= end and not lines[after - 1].strip():
            kept.remove(after)
            after += 1
        body = body[1:]
    code = textwrap.dedent("\n".join(lines[n - 1] for n in kept)).strip("\n")
    body_lines = 0
    if body:
        for n in range(body[0].lineno, end + 1):
            if n in kept and (text := lines[n - 1].strip()) and not text.startswith("#"):
                body_lines += 1
    if problem is None:
        problem = _body_problem(body)
    return PyFunction(qualname, start, end, code, docstring, body_lines, problem)


def _body_problem(body: list[ast.stmt]) -> DropReason | None:
    """``no_body`` for a docstring-only function, ``trivial_body`` for a placeholder body."""
    if not body:
        return "no_body"
    if len(body) > 1:
        return None
    stmt = body[0]
    if isinstance(stmt, ast.Pass):
        return "trivial_body"
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
        return "trivial_body"  # `...` or a bare string
    if isinstance(stmt, ast.Return) and (
        stmt.value is None or isinstance(stmt.value, ast.Constant)
    ):
        return "trivial_body"
    if isinstance(stmt, ast.Raise) and stmt.exc is not None:
        exc = stmt.exc.func if isinstance(stmt.exc, ast.Call) else stmt.exc
        if isinstance(exc, ast.Name) and exc.id == "NotImplementedError":
            return "trivial_body"
    return None


# A leading "name(args) -> result" paragraph restates the signature (C-style docstrings).
_SIGNATURE = re.compile(r"^[\w.]+\(.*\)(\s*->.*)?$")
_SENTENCE_END = re.compile(r"[.!?](?=\s+[A-Z(\"'`])")
_ABBREVIATIONS = ("e.g", "i.e", "cf", "vs", "etc")


def summarise(docstring: str) -> str:
    """The first sentence of the first paragraph that is not a signature, whitespace-normalised.

    >>> summarise("Read the status line.  Raises BadStatusLine\\nif it is bad.\\n\\nMore.")
    'Read the status line.'
    """
    for paragraph in re.split(r"\n\s*\n", docstring.strip()):
        text = " ".join(paragraph.split())
        if text and not _SIGNATURE.match(text):
            return _first_sentence(text)
    return ""


def _first_sentence(text: str) -> str:
    for m in _SENTENCE_END.finditer(text):
        before = text[: m.start()].rsplit(" ", 1)[-1].lower()
        if before not in _ABBREVIATIONS:
            return text[: m.end()]
    return text
