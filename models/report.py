"""The model card: one Jinja2 template filled from the pipeline's own outputs."""

from __future__ import annotations

from importlib import resources

import jinja2


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * float(x):.1f}%"


def render_card(context: dict, template: str = "model_card.md.j2") -> str:
    text = resources.files("churnlight.models").joinpath("templates", template).read_text("utf-8")
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined, autoescape=False, trim_blocks=False, lstrip_blocks=False
    )
    env.globals["pct"] = pct
    return env.from_string(text).render(**context)
