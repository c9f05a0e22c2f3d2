"""When two texts are the same text: one rule for every place that decides it.

Training masks an in-batch "negative" that is another example's copy of the positive, random
negatives and mined hard negatives must never be a copy of the query's positive, and the data
check counts repeated rows and a negative equal to its positive. All of them ask one question,
answered by :func:`text_identity`: two texts are the same when they are equal after

* **Unicode NFC normalisation** - ``"é"`` typed as one code point or as ``e`` plus a combining
  accent is the same word; copies of one document from two sources often differ only there;
* **whitespace collapsed** - runs of spaces, tabs, line breaks (and other Unicode spaces) become
  one space, leading and trailing ones go: a re-wrapped or re-indented copy is still a copy.

**Case is kept.** Folding it would call ``"US"`` and ``"us"``, or the code identifiers ``Parser``
and ``parser``, the same text: a real hard negative would then be dropped or masked, and for a
cased model the two are different inputs. The rule errs on the side of "different" only where the
texts really can differ in meaning; any looser match is a *near duplicate*
(:func:`near_duplicate_key`), which the data check reports as a warning and never acts on.

Example::

    text_identity("Vitamin   C\\n") == text_identity("Vitamin C")   # True
    text_identity("Vitamin C") == text_identity("vitamin c")        # False: case is kept
    near_duplicate_key("Vitamin C!") == near_duplicate_key("vitamin c")  # True
"""

from __future__ import annotations

import re
import unicodedata

_PUNCTUATION = re.compile(r"[^\w\s]")


def text_identity(text: str) -> str:
    """The key two texts share exactly when they are the same text (see the module docstring)."""
    if not text.isascii():  # ASCII is already NFC; skip the normaliser on the common case
        text = unicodedata.normalize("NFC", text)
    return " ".join(text.split())


def near_duplicate_key(text: str) -> str:
    """:func:`text_identity` with case folded and punctuation removed: a looser match for warnings.

    Used for near-duplicate queries or documents and for train/eval overlap, where flagging too
    much is cheap (a warning to read) and missing a leak is not.
    """
    return " ".join(_PUNCTUATION.sub(" ", text_identity(text).casefold()).split())
