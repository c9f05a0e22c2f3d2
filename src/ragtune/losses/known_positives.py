"""Which candidates are known positives of a query: set membership on text ids, vectorised.

A query's known positives are every document the data says is relevant to it (all the positives
of its group, by text identity; see ``ragtune.train.query_groups``). A loss that takes negatives
passes them as ``known_positive_ids`` (B, K), each row padded with negative ids, and asks of every
candidate column whether its text id is in the row: such a "negative" is a false negative.

Why ids and not a ready (B, C) mask: the ids of the candidates gather across devices like the
embeddings do (:mod:`ragtune.losses.distributed`), so each rank can mask the documents of every
other rank; a mask built per rank from its own rows would not know them.
"""

from __future__ import annotations

import torch


def known_positive_mask(known: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``out[r, c]``: is ``ids[c]`` one of ``known[r]``? (R, K) and (C,) -> (R, C) bool.

    Entries below 0 are padding (in ``known``) or unknown texts (in ``ids``) and match nothing.
    Cost: one ``torch.isin`` over R*C keys, no (R, K, C) intermediate, so a 1024-query batch
    with 40 positives each against 9,216 candidates stays a (1024, 9216) tensor.

    >>> known_positive_mask(torch.tensor([[3, 5], [4, -1]]), torch.tensor([5, 4, -1])).tolist()
    [[True, False, False], [False, True, False]]
    """
    r, c = known.size(0), ids.size(0)
    if r == 0 or c == 0 or known.numel() == 0:
        return torch.zeros(r, c, dtype=torch.bool, device=ids.device)
    known, ids = known.to(ids.device).long(), ids.long()
    m = int(max(int(known.max()), int(ids.max()), 0)) + 1  # ids lie in [0, m)
    base = torch.arange(r, device=ids.device)[:, None] * m  # (R, 1)
    wanted = (base + known)[known >= 0]  # (n_known,): row r's id x becomes r * m + x
    cells = base + ids[None, :]  # (R, C)
    return torch.isin(cells, wanted) & (ids >= 0)[None, :]
