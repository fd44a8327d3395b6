"""Free-text messages and complaints: the templates, in English and Chinese, and the seeded pick.

Vague and competitor texts carry the phrases the attitude lexicon looks for (domain.md
section 1); neutral texts are what most customers write.
"""

from __future__ import annotations

import numpy as np

TEXTS = {
    ("neutral", "en"): [
        "Thanks, the service was fine.",
        "Can I change my appointment time?",
        "Please send the invoice again.",
        "Great, see you next time.",
        "What are your opening hours on Sunday?",
    ],
    ("neutral", "zh"): [
        "谢谢，服务挺好的。",
        "可以改一下预约时间吗？",
        "请再发一次发票。",
        "好的，下次见。",
    ],
    ("vague", "en"): [
        "Let me think about it.",
        "Not needed for now.",
        "Maybe later.",
        "I'll get back to you, busy these days.",
    ],
    ("vague", "zh"): ["先考虑下。", "暂时不需要。", "再说吧。", "最近比较忙，回头再说。"],
    ("competitor", "en"): [
        "How is shop X doing these days?",
        "A competitor offered me a better price.",
        "Your rival has a new offer, can you match it?",
    ],
    ("competitor", "zh"): ["X店怎么样？", "别家给的价格更便宜。", "竞争对手有新活动，你们能比吗？"],
    ("complaint", "en"): [
        "The repair was not done properly.",
        "I waited two hours, this is unacceptable.",
        "Nobody called me back about my problem.",
    ],
    ("complaint", "zh"): ["维修没做好。", "等了两个小时，太不像话了。", "我的问题一直没人回复。"],
}


def pick_texts(kind: str, is_zh: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One template of `kind` per row, Chinese where `is_zh`, English elsewhere."""
    out = np.empty(is_zh.size, dtype=object)
    for lang, sel in (("zh", is_zh), ("en", ~is_zh)):
        pool = np.array(TEXTS[(kind, lang)], dtype=object)
        out[sel] = pool[rng.integers(0, pool.size, int(sel.sum()))]
    return out
