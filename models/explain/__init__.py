"""Why customers are at risk: contributions per feature in log-odds of the uncalibrated model,
and what is made of them.

- `contributions`: per-row contributions for each model kind, and global importance;
- `treeshap`: exact TreeSHAP from per-leaf pattern tables, for many rows of a LightGBM model;
- `reasons`: a customer's top reasons as plain sentences in English and Chinese;
- `figures`: the SHAP figures, in English and (with a CJK font) Chinese;
- `workflow`: what the explain stage computes, end to end (global drivers, reasons by tier).
"""
