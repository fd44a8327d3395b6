"""The font Chinese text is drawn with, shared by the SHAP figures and the model card's charts."""

from __future__ import annotations

import functools
import re
from pathlib import Path

# preferred first; every family the file pattern below can add is in the list
CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Microsoft YaHei",
    "PingFang SC",
    "SimHei",
    "Heiti SC",
    "AR PL UMing CN",
    "AR PL UKai CN",
    "Droid Sans Fallback",
)

_CJK_FILE = re.compile(r"cjk|wqy|wenquanyi|sourcehan|droidsansfallback|uming|ukai", re.I)


@functools.cache
def cjk_font() -> str | None:
    """A font family matplotlib can draw Chinese with, or None.

    Matplotlib caches its font list on first use, so a CJK font installed afterwards (e.g. by
    scripts/run.sh) is not in it: then the system's CJK font files are added to it here, and a
    family added that way is used even when it is not in `CJK_FONTS`."""
    from matplotlib import font_manager

    fm = font_manager.fontManager
    names = {f.name for f in fm.ttflist}
    found = next((f for f in CJK_FONTS if f in names), None)
    if found is None:
        added = []
        for path in sorted(font_manager.findSystemFonts()):
            if _CJK_FILE.search(Path(path).name):
                before = len(fm.ttflist)
                try:
                    fm.addfont(path)
                except (OSError, RuntimeError, ValueError):  # unreadable font file
                    continue
                added += [f.name for f in fm.ttflist[before : before + 1]]  # its main face
        names = {f.name for f in fm.ttflist}
        found = next((f for f in CJK_FONTS if f in names), added[0] if added else None)
    return found
