"""Exact TreeSHAP for many rows of a LightGBM model, from per-leaf pattern tables.

For one leaf, path-dependent TreeSHAP depends on a row only through which of the distinct
features on the leaf's path the row satisfies (every split on that feature sends it towards the
leaf) or not: a pattern of d bits. Tabulating each leaf's SHAP values for all 2^d patterns once
(the idea of FastTreeSHAP v2, Yang 2022) leaves one pass over the tree's edges and d additions
per leaf for each row, instead of O(leaves x depth^2). The tables hold sum(2^d x d) numbers:
train.search_space bounds max_depth by 8, so d <= 8, at most 2^8 x 8 = 2,048 numbers (16 KB) a
leaf, under 600 MB even for 600 trees of 63 leaves (the largest the search allows). The kernels
are compiled with numba (installed with shap) on first use; the values are LightGBM's
`pred_contrib` up to rounding (tests/unit/test_treeshap.py holds them to it).
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

_ZERO_THRESHOLD = float(np.float32(1e-35))  # LightGBM's kZeroThreshold (a float)
_MISSING = {"None": 0, "Zero": 1, "NaN": 2}
_SHAP_KERNELS = None


def _tables_kernel(leaf_value, leaf_d, leaf_feat_start, zfrac, leaf_table_start, table):
    """Fill `table` with each leaf's SHAP values for all 2^d patterns of its path's d distinct
    features (compiled by numba: `_shap_kernels`)."""
    e = np.zeros(64)
    eq = np.zeros(64)
    w = np.zeros(64)
    for leaf in range(len(leaf_value)):
        d = leaf_d[leaf]
        if d == 0:
            continue
        v = leaf_value[leaf]
        fs = leaf_feat_start[leaf]
        w[0] = 1.0 / d  # w(s) = s! (d - s - 1)! / d!
        for s in range(1, d):
            w[s] = w[s - 1] * s / (d - s)
        for code in range(1 << d):
            e[0] = 1.0
            q = 0
            nprod = 1.0
            for k in range(d):
                if (code >> k) & 1:
                    e[q + 1] = 0.0
                    for r in range(q + 1, 0, -1):
                        e[r] += zfrac[fs + k] * e[r - 1]
                    q += 1
                else:
                    nprod *= zfrac[fs + k]
            out = leaf_table_start[leaf] + code * d
            for i in range(d):
                zi = zfrac[fs + i]
                if (code >> i) & 1:
                    eq[0] = 1.0
                    for r in range(1, q):
                        eq[r] = e[r] - zi * eq[r - 1]
                    acc = 0.0
                    for s in range(q):
                        acc += w[s] * eq[q - 1 - s]
                    table[out + i] = v * (1.0 - zi) * nprod * acc
                else:
                    others = 1.0
                    for k in range(d):
                        if k != i and not (code >> k) & 1:
                            others *= zfrac[fs + k]
                    acc = 0.0
                    for s in range(q + 1):
                        acc += w[s] * e[q - s]
                    table[out + i] = -v * zi * others * acc


def _explain_kernel(
    x,
    lo,
    hi,
    tree_node_start,
    tree_edge_start,
    node_feat,
    node_thr,
    node_missing,
    node_default_left,
    edge_parent,
    edge_left,
    edge_bit,
    edge_first,
    edge_child,
    leaf_d,
    leaf_feat_start,
    leaf_feat,
    leaf_table_start,
    table,
    zero_threshold,
    out,
):
    """Add the SHAP values of rows `lo`..`hi` of `x` to `out`: per tree, each row's pattern code
    at every node, then the table entries of the leaves (compiled by numba: `_shap_kernels`)."""
    n_trees = len(tree_node_start) - 1
    max_nodes = 1
    for t in range(n_trees):
        max_nodes = max(max_nodes, tree_node_start[t + 1] - tree_node_start[t])
    left = np.zeros(max_nodes, dtype=np.bool_)
    codes = np.zeros(max_nodes, dtype=np.int64)
    # rows in blocks, trees inside: a tree's tables stay in cache for the whole block
    for start in range(lo, hi, 256):
        stop = min(start + 256, hi)
        for t in range(n_trees):
            ns = tree_node_start[t]
            for row in range(start, stop):
                for g in range(ns, tree_node_start[t + 1]):
                    val = x[row, node_feat[g]]
                    mt = node_missing[g]
                    if np.isnan(val) and mt != 2:
                        val = 0.0
                    if (mt == 1 and -zero_threshold <= val <= zero_threshold) or (
                        mt == 2 and np.isnan(val)
                    ):
                        left[g - ns] = node_default_left[g]
                    else:
                        left[g - ns] = val <= node_thr[g]
                # the pattern code of every node, parents before children: bit b says
                # whether the row follows every split so far on the path's b-th feature
                codes[0] = 0
                for e in range(tree_edge_start[t], tree_edge_start[t + 1]):
                    parent = edge_parent[e]
                    code = codes[parent]
                    if left[parent] == edge_left[e]:
                        if edge_first[e]:
                            code |= 1 << edge_bit[e]
                    elif not edge_first[e]:
                        code &= ~(1 << edge_bit[e])
                    child = edge_child[e]
                    if child >= 0:
                        codes[child] = code
                        continue
                    leaf = -child - 1
                    d = leaf_d[leaf]
                    base = leaf_table_start[leaf] + code * d
                    fs = leaf_feat_start[leaf]
                    for k in range(d):
                        out[row, leaf_feat[fs + k]] += table[base + k]


def _shap_kernels():
    """(tables, explain): the numba kernels, compiled on first use."""
    global _SHAP_KERNELS
    if _SHAP_KERNELS is None:
        import numba

        jit = numba.njit(nogil=True, cache=False)
        _SHAP_KERNELS = (jit(_tables_kernel), jit(_explain_kernel))
    return _SHAP_KERNELS


def _count(node: dict) -> float:
    return float(node["internal_count"] if "split_index" in node else node["leaf_count"])


def _expected(node: dict) -> tuple[float, float]:
    """The tree's mean output over the training rows below `node`, and their count."""
    if "split_index" not in node:
        return float(node["leaf_value"]), float(node.get("leaf_count", 0))
    el, cl = _expected(node["left_child"])
    er, cr = _expected(node["right_child"])
    c = cl + cr
    return ((el * cl + er * cr) / c if c > 0 else (el + er) / 2), c


@dataclass
class _Flat:
    """A forest flattened for the kernels: split nodes, edges, leaves, in lists while walking."""

    nodes: dict[str, list] = field(
        default_factory=lambda: {"feat": [], "thr": [], "missing": [], "default_left": []}
    )
    edges: dict[str, list] = field(
        default_factory=lambda: {"parent": [], "left": [], "bit": [], "first": [], "child": []}
    )
    leaf_value: list = field(default_factory=list)
    leaf_d: list = field(default_factory=list)
    leaf_feat_start: list = field(default_factory=list)
    leaf_feat: list = field(default_factory=list)
    zfrac: list = field(default_factory=list)
    tree_node_start: list = field(default_factory=lambda: [0])
    tree_edge_start: list = field(default_factory=lambda: [0])
    base: float = 0.0


def _add_leaf(flat: _Flat, leaf: int, node: dict, path: list, order: dict[int, int]) -> None:
    """A leaf's value, its path's distinct features (in bit order) and their cover fractions."""
    z = np.ones(len(order))
    for f, ratio in path:
        z[order[f]] *= ratio
    flat.leaf_value[leaf] = float(node["leaf_value"])
    flat.leaf_d[leaf] = len(order)
    flat.leaf_feat_start[leaf] = len(flat.leaf_feat)
    flat.leaf_feat.extend(order)
    flat.zfrac.extend(z)


def _add_split(flat: _Flat, node: dict) -> int:
    """A split node's feature, threshold and missing-value rule; returns its number in the tree."""
    if node.get("linear"):
        raise ValueError("linear trees are not covered")
    if node["decision_type"] != "<=":
        raise ValueError("categorical splits are not covered")
    nodes = flat.nodes
    g = len(nodes["feat"]) - flat.tree_node_start[-1]
    nodes["feat"].append(int(node["split_feature"]))
    nodes["thr"].append(float(node["threshold"]))
    nodes["missing"].append(_MISSING[node["missing_type"]])
    nodes["default_left"].append(bool(node["default_left"]))
    return g


def _add_tree(flat: _Flat, tree: dict) -> None:
    """One tree of `dump_model()`, depth first with parents before children. A path is
    [(feature, cover ratio), ...]; its distinct features are numbered in order of first
    appearance (the pattern's bits)."""
    root = tree["tree_structure"]
    flat.base += _expected(root)[0]
    first_leaf = len(flat.leaf_value)
    for column in (flat.leaf_value, flat.leaf_d, flat.leaf_feat_start):
        column.extend([0] * int(tree["num_leaves"]))
    edges = flat.edges
    stack: list[tuple[dict, int, bool, list]] = [(root, -1, False, [])]
    while stack:
        node, parent, goes_left, path = stack.pop()
        order: dict[int, int] = {}
        for f, _ in path:
            order.setdefault(f, len(order))
        if parent >= 0:
            f = path[-1][0]
            edges["parent"].append(parent)
            edges["left"].append(goes_left)
            edges["bit"].append(order[f])
            edges["first"].append(all(f != g for g, _ in path[:-1]))
        if "split_index" not in node:
            leaf = first_leaf + int(node.get("leaf_index", 0))
            if parent >= 0:
                edges["child"].append(-leaf - 1)
            _add_leaf(flat, leaf, node, path, order)
            continue
        g = _add_split(flat, node)
        if parent >= 0:
            edges["child"].append(g)
        f, c = int(node["split_feature"]), _count(node)
        for child, left in ((node["right_child"], False), (node["left_child"], True)):
            ratio = _count(child) / c if c > 0 else 0.5
            stack.append((child, g, left, [*path, (f, ratio)]))
    flat.tree_node_start.append(len(flat.nodes["feat"]))
    flat.tree_edge_start.append(len(edges["parent"]))


def treeshap_tables(booster, max_table_mb: float = 2048) -> dict:
    """Everything the exact kernel needs from a binary LightGBM booster with numerical splits:
    flattened split nodes, the tree edges in parent-before-child order and the per-leaf pattern
    tables. Raises ValueError for what it does not cover (categorical splits, linear trees,
    several models per round, tables above `max_table_mb`)."""
    if booster.num_model_per_iteration() != 1:
        raise ValueError("treeshap_tables covers binary and regression boosters only")
    flat = _Flat()
    for tree in booster.dump_model()["tree_info"]:
        _add_tree(flat, tree)
    d = np.asarray(flat.leaf_d, dtype=np.int64)
    if len(d) and d.max() > 40:
        raise ValueError("a leaf path has more than 40 distinct features")
    sizes = (np.left_shift(1, d) * d).astype(np.int64)
    if sizes.sum() * 8 > max_table_mb * 2**20:
        raise ValueError(
            f"TreeSHAP tables would take {sizes.sum() * 8 / 2**20:,.0f} MB (> {max_table_mb})"
        )
    nodes, edges = flat.nodes, flat.edges
    t = {
        "tree_node_start": np.asarray(flat.tree_node_start, dtype=np.int64),
        "tree_edge_start": np.asarray(flat.tree_edge_start, dtype=np.int64),
        "node_feat": np.asarray(nodes["feat"], dtype=np.int64),
        "node_thr": np.asarray(nodes["thr"], dtype=np.float64),
        "node_missing": np.asarray(nodes["missing"], dtype=np.int8),
        "node_default_left": np.asarray(nodes["default_left"], dtype=np.bool_),
        "edge_parent": np.asarray(edges["parent"], dtype=np.int64),
        "edge_left": np.asarray(edges["left"], dtype=np.bool_),
        "edge_bit": np.asarray(edges["bit"], dtype=np.int64),
        "edge_first": np.asarray(edges["first"], dtype=np.bool_),
        "edge_child": np.asarray(edges["child"], dtype=np.int64),
        "leaf_d": d,
        "leaf_feat_start": np.asarray(flat.leaf_feat_start, dtype=np.int64),
        "leaf_feat": np.asarray(flat.leaf_feat, dtype=np.int64),
        "leaf_table_start": np.r_[0, np.cumsum(sizes)[:-1]].astype(np.int64),
        "table": np.zeros(int(sizes.sum())),
        "base": float(flat.base),
        "n_features": booster.num_feature(),
    }
    tables, _ = _shap_kernels()
    leaf_value = np.asarray(flat.leaf_value, dtype=np.float64)
    zfrac = np.asarray(flat.zfrac, dtype=np.float64)
    tables(leaf_value, d, t["leaf_feat_start"], zfrac, t["leaf_table_start"], t["table"])
    return t


_EXPLAIN_ARGS = (
    "tree_node_start",
    "tree_edge_start",
    "node_feat",
    "node_thr",
    "node_missing",
    "node_default_left",
    "edge_parent",
    "edge_left",
    "edge_bit",
    "edge_first",
    "edge_child",
    "leaf_d",
    "leaf_feat_start",
    "leaf_feat",
    "leaf_table_start",
    "table",
)


def treeshap_values(tables: dict, zz: np.ndarray, num_threads: int = 1) -> np.ndarray:
    """Exact TreeSHAP values (rows x model features, without the base value) for encoded rows
    `zz`, from `treeshap_tables`; rows are split across `num_threads` threads."""
    _, explain = _shap_kernels()
    zz = np.ascontiguousarray(zz, dtype=np.float64)
    out = np.zeros((len(zz), tables["n_features"]))
    args = [tables[k] for k in _EXPLAIN_ARGS]
    threads = max(1, min(int(num_threads), len(zz)))
    bounds = np.linspace(0, len(zz), threads + 1).astype(int)
    if threads == 1:
        explain(zz, 0, len(zz), *args, _ZERO_THRESHOLD, out)
        return out
    with ThreadPoolExecutor(threads) as pool:
        jobs = [
            pool.submit(explain, zz, int(lo), int(hi), *args, _ZERO_THRESHOLD, out)
            for lo, hi in itertools.pairwise(bounds)
        ]
        for job in jobs:
            job.result()
    return out
