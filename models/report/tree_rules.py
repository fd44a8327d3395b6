"""The decision tree's rules in a manager's words: the paths of scikit-learn's `export_text`
that end in churn, simplest first, each condition phrased from the feature registry.
"""

from __future__ import annotations

import math
import re

import pandas as pd

from churnlight.models.report.format import descriptions

_SPLIT = re.compile(r"^(?P<feat>.+?)\s+(?P<op><=|>)\s+(?P<thr>-?[0-9.eE+-]+)$")
_POSITIVE = {"1", "1.0", "True", "true"}


def _parse_export_text(text: str) -> dict:
    """sklearn's `export_text` as a nested tree of {'text', 'children'}."""
    root: dict = {"text": "", "children": []}
    stack = [root]
    for line in text.splitlines():
        if "|--- " not in line:
            continue
        head, content = line.split("|--- ", 1)
        depth = head.count("|")
        node = {"text": content.strip(), "children": []}
        del stack[depth + 1 :]
        if len(stack) <= depth:  # malformed indentation: attach to the deepest node
            depth = len(stack) - 1
        stack[depth]["children"].append(node)
        stack.append(node)
    return root


def _leaf_class(node: dict) -> str | None:
    """The class every path below `node` ends in, or None when they differ or are truncated."""
    kids = node["children"]
    if len(kids) == 1 and kids[0]["text"].startswith("class:"):
        return kids[0]["text"].split(":", 1)[1].strip()
    if not kids or any(not _SPLIT.match(k["text"]) for k in kids):
        return None
    classes = {_leaf_class(k) for k in kids}
    return classes.pop() if len(classes) == 1 and None not in classes else None


def _short(v: float) -> str:
    """A rule threshold as a person writes it: 920.0234 -> '920.02', 3.0 -> '3'."""
    return f"{v:,.2f}".rstrip("0").rstrip(".")


def _condition(feat: str, op: str, thr: float, registry: pd.DataFrame, lang: str) -> str:
    desc = descriptions(registry, lang)
    units = dict(zip(registry["name"], registry["unit"], strict=True))
    if feat not in desc:  # a one-hot column: <categorical feature>_<level>
        base = max((n for n in desc if feat.startswith(n + "_")), key=len, default=None)
        if base is not None and units.get(base) == "category" and 0 < thr < 1:
            level = feat[len(base) + 1 :]
            return f"{desc[base]} {'=' if op == '>' else '≠'} {level}"
    words = desc.get(feat, feat)
    if units.get(feat) == "flag" and 0 < thr < 1:
        yes, no = ("是", "否") if lang == "zh" else ("yes", "no")
        return f"{words}: {yes if op == '>' else no}"
    if thr - math.floor(thr) == 0.5:  # a split between whole numbers
        if thr == 0.5 and op == "<=":
            return f"{words} = 0"
        return f"{words} {'≥' if op == '>' else '≤'} {_short(math.floor(thr) + (op == '>'))}"
    return f"{words} {'>' if op == '>' else '≤'} {_short(thr)}"


def tree_rules_summary(
    text: str | None, registry: pd.DataFrame, lang: str, top: int = 5
) -> list[list[str]]:
    """The decision tree's paths that end in 'churn', simplest first, as lists of conditions in
    the card's language. Subtrees whose leaves all agree are one rule; on a feature split twice
    along a path only the tighter bound is kept."""
    if not text or not text.strip():
        return []
    root = _parse_export_text(text)
    rules: list[list[tuple[str, str, float]]] = []

    def walk(node: dict, path: list[tuple[str, str, float]]) -> None:
        for kid in node["children"]:
            m = _SPLIT.match(kid["text"])
            if not m:
                continue
            here = [*path, (m["feat"], m["op"], float(m["thr"]))]
            cls = _leaf_class(kid)
            if cls in _POSITIVE:
                rules.append(here)
            elif cls is None:
                walk(kid, here)

    walk(root, [])
    out = []
    for path in sorted(rules, key=len)[:top]:
        bounds: dict[tuple[str, str], float] = {}
        for feat, op, thr in path:
            key = (feat, op)
            if key in bounds:
                thr = min(bounds[key], thr) if op == "<=" else max(bounds[key], thr)
            bounds[key] = thr
        out.append([_condition(f, op, t, registry, lang) for (f, op), t in bounds.items()])
    return out
