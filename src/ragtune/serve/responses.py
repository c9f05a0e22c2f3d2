"""A JSON response rendered by orjson, for the bodies that are mostly floats.

Why: ``/v1/embeddings`` answers with one list of 384+ floats per text, and the standard
library's encoder formats each float in Python-level code: at 64 concurrent clients its
``iterencode`` was 6.7% of all the server's samples (py-spy, bundled MiniLM, 2-core Xeon), about
40% of what the event loop did. orjson writes the same numbers (shortest round-trip form, as
``repr``) in C.

Like Starlette's ``JSONResponse`` it refuses NaN and infinity (``allow_nan=False`` there): orjson
would write them as ``null``, silently; here they raise, and the app answers 500.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
from starlette.responses import JSONResponse

_NON_FINITE = "a response value is NaN or infinite, which JSON cannot carry"


class FastJSONResponse(JSONResponse):
    """``JSONResponse`` with orjson's encoder; non-finite floats raise ``ValueError``."""

    def render(self, content: Any) -> bytes:
        _check_finite(content)
        return orjson.dumps(content)


def _check_finite(content: Any) -> None:
    """Raise ``ValueError`` on a NaN or infinite float anywhere in ``content``."""
    stack = [content]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError(_NON_FINITE)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            if item and all(type(v) is float for v in item):  # a vector
                # one C-level sum: NaN and infinity carry through it; only a sum that is not
                # finite is looked at item by item (a finite overflow is not a NaN)
                if not math.isfinite(sum(item)) and not all(map(math.isfinite, item)):
                    raise ValueError(_NON_FINITE)
            else:
                stack.extend(item)
