"""The claim registry: one module per claim (``hNN_*.py``), each registering itself with ``@claim``.

Shared pieces live beside them: ``base`` (Claim, ClaimContext, applicability), ``common`` (measure
helpers), ``fixtures`` (cached training runs several claims reuse).
"""

from __future__ import annotations

import importlib
import pkgutil
import re

CLAIM_MODULE = re.compile(r"^h\d\d_\w+$")


def claim_modules() -> list[str]:
    """The claim modules of this package, in id order."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if CLAIM_MODULE.match(m.name))


def ensure_loaded() -> None:
    """Import every claim module once (each registers its claim on import)."""
    for name in claim_modules():
        importlib.import_module(f"{__name__}.{name}")
