"""What the LLM generator asks for each chunk, and how it reads the answer.

The prompt asks for ``n`` questions a user would ask that the passage answers, as JSON
(``{"questions": [...]}``), in the style of doc2query, InPars and Promptagator (Nogueira et al.
2019; Bonifacio et al. 2022; Dai et al. 2022): questions that stand on their own, in a user's
words, about different parts of the passage. Why also ban "this passage" and copied phrases: a
query that names its passage, or repeats its sentences, teaches string matching, not retrieval.

Models do not always answer in the shape asked for, so :func:`parse_questions` is tolerant: JSON
in a code fence or with chatter around it, a reasoning model's ``<think>`` block first, a
numbered or bulleted list instead of JSON, JSON cut short by the token limit.
:func:`clean_questions` then strips, filters and deduplicates.

:data:`PROMPT_VERSION` is part of every cache key; change it with the prompt.

Example::

    messages = build_messages(chunk.text, 3)
    questions, repeats = clean_questions(parse_questions(answer_text), 3)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence

PROMPT_VERSION = 1
"""Part of every cache key: raise it whenever :func:`build_messages` changes what it asks."""
MIN_QUESTION_CHARS = 8
MAX_QUESTION_CHARS = 300

SYSTEM_PROMPT = "You write the questions people type into a search box. You reply with JSON only."
USER_PROMPT = """Below is a passage from a collection of documents or a code base.
Write {count} that a user might ask and that this passage answers.
- Each question must make sense on its own, to someone who has not seen the passage: never \
write "this passage", "this code", "the text", "the author" or "the above".
- Use the words a user would use; do not copy long phrases from the passage.
- Ask about different facts or parts of the passage.
Reply with JSON only, in this form: {{"questions": ["...", "..."]}}

Passage:
\"\"\"
{text}
\"\"\""""


def build_messages(text: str, n: int) -> list[dict[str, str]]:
    """The chat messages asking for ``n`` questions about ``text`` (:data:`PROMPT_VERSION`)."""
    count = "one question" if n == 1 else f"{n} different questions"
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": USER_PROMPT.format(count=count, text=text)},
    ]


def clip_text(text: str, max_chars: int) -> str:
    """``text`` cut to ``max_chars``, at the last line end when that keeps at least half."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    end = cut.rfind("\n")
    return cut[:end] if end >= max_chars // 2 else cut


_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_FENCED = re.compile(r"```[\w-]*[ \t]*\n?(.*?)```", re.DOTALL)
_LIST_ITEM = re.compile(r"^\s*(?:\d+\s*[.):]|[-*\u2022]|[Qq]\d*\s*[.:)])\s+(.+?)\s*$")
_OPEN_FENCE = re.compile(r"^```[\w-]*\s*")
_QUOTED = re.compile(r'"((?:[^"\\\n]|\\.)*)"')


def parse_questions(content: str) -> list[str]:
    """The questions in an LLM answer, raw (see :func:`clean_questions`); [] when none.

    Accepted, tried in this order: ``{"questions": [...]}`` (or any object whose one list holds
    them), a bare JSON list, either inside a code fence or with text around it; JSON cut short
    by the token limit (the complete strings in it); a numbered or bulleted list; lines ending
    with ``?``. A ``<think>...</think>`` block in front is dropped.
    """
    text = _THINK.sub("", content)
    if "</think>" in text.lower():  # the opening tag was in the prompt's template
        text = text[text.lower().rfind("</think>") + len("</think>") :]
    text = text.strip()
    if text.lower().startswith("<think>"):
        return []  # the token limit ended the answer while the model was still reasoning
    candidates = [m.group(1).strip() for m in _FENCED.finditer(text)] + [text]
    for candidate in candidates:
        for piece in _json_pieces(candidate):
            found = _from_json(piece)
            if found:
                return found
    for candidate in candidates:
        candidate = _OPEN_FENCE.sub("", candidate)  # a fence the token limit left unclosed
        start = candidate.find("[")
        if start >= 0 and candidate.startswith(("{", "[")):
            quoted = [_unquote(s) for s in _QUOTED.findall(candidate[start:])]
            if quoted := [q for q in quoted if q]:
                return quoted
    lines = text.splitlines()
    items = [m.group(1) for line in lines if (m := _LIST_ITEM.match(line))]
    if items:
        return items
    return [line.strip() for line in lines if line.strip().endswith("?")]


def _json_pieces(text: str) -> Iterator[str]:
    yield text
    for open_, close in ("{}", "[]"):
        start, end = text.find(open_), text.rfind(close)
        if 0 <= start < end:
            yield text[start : end + 1]


def _from_json(piece: str) -> list[str]:
    try:
        data = json.loads(piece)
    except json.JSONDecodeError:
        return []
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        preferred = [
            v
            for k, v in data.items()
            if str(k).lower() in ("questions", "queries") and isinstance(v, list)
        ]
        data = (preferred or lists or [[]])[0]
    if not isinstance(data, list):
        return []
    out = []
    for item in data:
        if isinstance(item, dict):
            item = item.get("question", item.get("query"))
        if isinstance(item, str):
            out.append(item)
    return out


def _unquote(s: str) -> str:
    try:
        value = json.loads(f'"{s}"')
    except json.JSONDecodeError:
        return s
    return value if isinstance(value, str) and value.lower() not in ("questions", "queries") else ""


def normalize(question: str) -> str:
    """The form duplicates are compared in: case-folded, spaces collapsed, end punctuation off."""
    return " ".join(question.casefold().split()).rstrip("?.!:; ")


def clean_questions(questions: Sequence[str], n: int) -> tuple[list[str], int]:
    """The first ``n`` distinct usable questions, and how many repeats were dropped.

    Each is stripped of quotes, list markers and extra spaces; one shorter than
    :data:`MIN_QUESTION_CHARS` or longer than :data:`MAX_QUESTION_CHARS` is dropped (a stray
    word, or a paragraph the model wrote instead of a question).
    """
    kept: list[str] = []
    seen: set[str] = set()
    repeats = 0
    for raw in questions:
        q = " ".join(raw.split()).strip("\"'`\u201c\u201d ")
        if m := _LIST_ITEM.match(q):
            q = m.group(1)
        if not MIN_QUESTION_CHARS <= len(q) <= MAX_QUESTION_CHARS:
            continue
        key = normalize(q)
        if key in seen:
            repeats += 1
            continue
        seen.add(key)
        kept.append(q)
        if len(kept) == n:
            break
    return kept, repeats


__all__ = [
    "PROMPT_VERSION",
    "build_messages",
    "clean_questions",
    "clip_text",
    "normalize",
    "parse_questions",
]
