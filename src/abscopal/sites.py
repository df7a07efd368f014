"""Lesion sites: the organ vocabulary that virtual patients, RECIST scoring, trial targets and studies share.

Each entry is one organ in the sense of RECIST 1.1 (Eisenhauer 2009: all lymph nodes count as one organ).
"""

from __future__ import annotations

__all__ = ["NODE_SITES", "SITES"]

SITES = (
    "lung",
    "lymph_node",
    "liver",
    "adrenal",
    "bone",
    "brain",
    "pleura",
    "kidney",
    "soft_tissue",
    "peritoneum",
    "skin",
    "other",
)
"""Organs a lesion can sit in (RECIST 1.1 organs; ``other`` for the rest)."""
NODE_SITES = frozenset({"lymph_node"})
"""Sites measured by the short axis (RECIST 1.1 nodes)."""
