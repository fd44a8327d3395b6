"""The model card a manager reads, as Markdown and as one self-contained HTML page.

- `format`: how the card writes numbers and words (the template's helpers);
- `context`: the template's context from what the pipeline wrote (`CardInputs`, `build_context`);
- `tree_rules`: the decision tree's churn paths in a manager's words;
- `charts`: the calibration and cumulative-gains charts the card draws;
- `render`: the template to Markdown, and Markdown to HTML with markdown-it-py;
- `browser`: headless Chromium, for the card's screenshot and its browser test.

Everything but `browser` is pure: the report stage reads the files and passes their contents in.
"""
