"""How the card writes numbers and words: the template's formatting helpers (percentages,
thousands, decimals, table cells) and the small conversions the context needs.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Iterable

import pandas as pd


def pct(x: float | None, digits: int = 1) -> str:
    """0.1234 -> '12.3%'; None or NaN -> 'n/a'."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{100 * float(x):.{digits}f}%"


def num(x: float | None, digits: int = 0) -> str:
    """Thousands separators: 1234567.8 -> '1,234,568'."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{float(x):,.{digits}f}"


def dec(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{float(x):.{digits}f}"


def lcfirst(text: object) -> str:
    """'Number of logins' -> 'number of logins' mid-sentence; 'NPS ...' stays as it is."""
    s = str(text)
    return s[:1].lower() + s[1:] if s[1:2].islower() else s


def cell(text: object) -> str:
    """A value safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def content_hash(blobs: Iterable[bytes], length: int = 12) -> str:
    """A short SHA-256 over byte strings (the data hash of the Version section)."""
    h = hashlib.sha256()
    for b in blobs:
        h.update(hashlib.sha256(b).digest())
    return h.hexdigest()[:length]


def descriptions(registry: pd.DataFrame, lang: str) -> dict[str, str]:
    """Each feature's description in the card's language, by feature name."""
    col = "description_zh" if lang == "zh" else "description_en"
    return dict(zip(registry["name"], registry[col], strict=True))
