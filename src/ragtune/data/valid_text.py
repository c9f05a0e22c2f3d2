"""Text a tokenizer cannot take, found at read time where the file, line and field are known.

Every reader passes each text field (and each id) to :func:`text_problem`; a text it refuses
becomes one error naming ``file:line`` and the field, instead of a tokenizer traceback hours into
training (or a wrong model after it). Two things are refused:

* **a lone surrogate** (U+D800..U+DFFF): half of a UTF-16 pair, not a character. JSON allows it
  as an escape (``"\\udc00"`` is valid JSON), so a JSON reader hands it over without complaint,
  but it cannot be encoded as UTF-8: fast tokenizers reject the whole batch it is in, and
  writing it to any output file fails;
* **a NUL character** (U+0000): tokenizers drop it silently (``"a\\x00b"`` becomes ``"ab"``), and
  NULs in a text file usually mean it is binary or UTF-16, i.e. every text read from it is wrong.

Other control characters, tabs and line breaks are ordinary text and pass.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TextProblem:
    """Why a text is refused (``message``) and what to do about it (``hint``)."""

    message: str
    hint: str


def text_problem(text: str) -> TextProblem | None:
    """None for text a tokenizer takes as it is; otherwise the first problem, with its position.

    Positions count characters from 1, as an editor's column does.

    >>> text_problem("caf\\udce9").message
    'text holds a lone surrogate U+DCE9 at character 4'
    >>> text_problem("fine") is None
    True
    """
    nul = text.find("\x00")
    if nul >= 0:
        return TextProblem(
            f"text holds a NUL character (U+0000) at character {nul + 1}",
            "NUL bytes usually mean a binary or UTF-16 file; save it as UTF-8 text",
        )
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:  # only surrogates fail to encode
            return TextProblem(
                f"text holds a lone surrogate U+{ord(text[exc.start]):04X} "
                f"at character {exc.start + 1}",
                "half of a UTF-16 pair, e.g. a JSON escape such as \\udc00 without its partner; "
                "fix the program that wrote the file or drop the row",
            )
    return None
