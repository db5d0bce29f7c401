"""Review and news sentences for the zoo's corpus (recipe v3): the text H15's backbone gate reads.

Drawn from H15's own generators under the corpus's seeds, minus every example of H15's data sets, so the corpus
teaches the style and never an example a claim trains or scores on.
"""

from __future__ import annotations

TEXT_KINDS = ("sentiment", "topic")
TEXT_POOL = 4000  # distinct sentences per kind and corpus seed
# the data sets H15 trains and evaluates on (its data seed 0; the slow and fast tiers' sizes): kept out of the pool
CLAIM_TEXT_SETS = ((400, 100, 0), (32, 16, 0))


def claim_texts(kind: str) -> set[str]:
    """Every text of the H15 data sets of ``kind`` (train and validation) at :data:`CLAIM_TEXT_SETS`."""
    from ..training.textcls import DATASETS

    out: set[str] = set()
    for n_train, n_val, data_seed in CLAIM_TEXT_SETS:
        data = DATASETS[kind](n_train=n_train, n_val=n_val, seed=data_seed)
        out |= {e.text for e in data.train + data.val}
    return out


def text_pool(kind: str, seed: int, n: int = TEXT_POOL) -> list[str]:
    """``n`` sentences of ``kind`` from H15's generator under a seed of the corpus's own, minus every text of
    H15's data sets, so the corpus teaches the style and never an example a claim trains or scores on."""
    from ..training.textcls import DATASETS

    exclude = claim_texts(kind)
    data = DATASETS[kind](n_train=n + len(exclude), n_val=4, seed=1_000_003 + seed)
    return [e.text for e in data.train if e.text not in exclude][:n]
