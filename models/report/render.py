"""The card rendered: one Jinja2 template to Markdown, and that Markdown to one HTML page.

The template (`templates/model_card.md.j2`) writes Markdown only, in English or Chinese
(`report.language`); images go through `figure(name, caption)`, which points at the figure file
next to the Markdown card and at a data URI in the HTML card. markdown-it-py (CommonMark with
tables, raw HTML off: every text run is escaped) turns the Markdown into HTML, with a few rules
for the card's layout: each `##` section in a `<section id="sN">`, a paragraph made only of
images as a gallery of `<figure>`s side by side, and table cells that hold a number
right-aligned (`class="num"`). The page is self-contained: figures as base64 data URIs, the
stylesheet inline, a strict Content-Security-Policy, no scripts, nothing fetched.
"""

from __future__ import annotations

import functools
import html
import itertools
import re
from collections.abc import Callable, Sequence
from importlib import resources

import jinja2
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

from churnlight.models.report.format import cell, dec, lcfirst, num, pct

TEMPLATE = "model_card.md.j2"
STYLE = "model_card.css"
# nothing may be fetched: images are data URIs, styles inline, no scripts at all
CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'"
)
# a table cell that holds a number, a percentage, a ratio or an estimate with its interval
_NUMBER = re.compile(r"^[\s\-+−]*[0-9][0-9,.\s]*(%|x|×)?(\s*\[.*\])?$")


# --- Markdown from the template ----------------------------------------------------------------


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # Markdown out; markdown-it escapes every text run of the HTML card
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals.update(pct=pct, num=num, dec=dec)
    env.filters["cell"] = cell
    env.filters["lcfirst"] = lcfirst
    return env


def _template_text(template: str) -> str:
    return resources.files("churnlight.models").joinpath("templates", template).read_text("utf-8")


def _figure_macro(images: dict[str, str], missing: str) -> Callable[[str, str], str]:
    def figure(name: str, caption: str) -> str:
        src = images.get(name)
        if src is None:
            return f"*{caption}: {missing.format(name=name)}*" if missing else ""
        return f"![{caption}]({src})"

    return figure


def render_markdown(context: dict, fmt: str = "md", template: str = TEMPLATE) -> str:
    """The template rendered to Markdown: images point at the figure files (`fmt='md'`) or are
    data URIs (`fmt='html'`, the source of the HTML card)."""
    if fmt not in ("md", "html"):
        raise ValueError(f"fmt must be 'md' or 'html', not {fmt!r}")
    env = _environment()
    if fmt == "md":
        zh = context.get("lang") == "zh"
        missing = (
            "图见 model_card.html（数据：plots/{name}.csv）。"
            if zh
            else "see model_card.html (data: plots/{name}.csv)."
        )
        images = context["images_md"]
    else:
        missing, images = "", context["images_html"]
    env.globals["figure"] = _figure_macro(images, missing)
    env.globals["fmt"] = fmt
    markdown = env.from_string(_template_text(template)).render(**context)
    return re.sub(r"\n{3,}", "\n\n", markdown).strip() + "\n"


def render_card(context: dict, fmt: str = "md", template: str = TEMPLATE) -> str:
    """The card as Markdown (`fmt='md'`) or as a self-contained HTML page (`fmt='html'`).

    Both come from the same template: the HTML is the Markdown rendered with images as data URIs
    and rendered to HTML by markdown-it-py (`_convert`)."""
    markdown = render_markdown(context, fmt, template)
    if fmt == "md":
        return markdown
    body, title = _convert(markdown)
    return html_page(body, title=title, lang=context.get("lang", "en"))


# --- Markdown to HTML: markdown-it-py and the card's layout rules ------------------------------


def _sections(state: StateCore) -> None:
    """Wrap each `##` heading and what follows it, up to the next one, in <section id="sN">."""
    out: list[Token] = []
    n = 0
    for token in state.tokens:
        if token.type == "heading_open" and token.tag == "h2":
            if n:
                out.append(Token("section_close", "section", -1, block=True))
            n += 1
            out.append(Token("section_open", "section", 1, attrs={"id": f"s{n}"}, block=True))
        out.append(token)
    if n:
        out.append(Token("section_close", "section", -1, block=True))
    state.tokens = out


def _galleries(state: StateCore) -> None:
    """A paragraph made only of images (one a line) becomes <div class="figures">, each image a
    <figure> with its caption (`_figure`): two or more side by side, one alone at full width."""
    tokens = state.tokens
    for i, token in enumerate(tokens[:-2]):
        if token.type != "paragraph_open" or token.hidden:
            continue
        children = tokens[i + 1].children or []
        images = [c for c in children if c.type == "image"]
        only_images = all(
            c.type in ("image", "softbreak") or (c.type == "text" and not c.content.strip())
            for c in children
        )
        if not images or not only_images:
            continue
        for image in images:
            image.meta["figure"] = True
        gallery = "figures" if len(images) > 1 else "figures one"
        tokens[i] = Token("figures_open", "div", 1, attrs={"class": gallery}, block=True)
        tokens[i + 2] = Token("figures_close", "div", -1, block=True)


def _number_cells(state: StateCore) -> None:
    """Mark table cells whose text is a number (bold or not) with class="num": right-aligned."""
    for token, content in itertools.pairwise(state.tokens):
        is_cell = token.type == "td_open" and content.type == "inline"
        if is_cell and _NUMBER.match(content.content.replace("*", "")):
            token.attrJoin("class", "num")


def _figure(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """An image; inside a gallery a <figure> with its alt text as the caption."""
    img = self.image(tokens, idx, options, env)
    token = tokens[idx]
    if not token.meta.get("figure"):
        return img
    caption = self.renderInline(token.children or [], options, env)
    return f"<figure>{img}<figcaption>{caption}</figcaption></figure>"


@functools.cache
def card_markdown() -> MarkdownIt:
    """The card's Markdown parser and renderer: CommonMark with tables, raw HTML escaped, HTML5
    void tags, and the card's layout rules."""
    md = MarkdownIt("commonmark", {"html": False, "xhtmlOut": False}).enable("table")
    md.core.ruler.push("card_sections", _sections)
    md.core.ruler.push("card_galleries", _galleries)
    md.core.ruler.push("card_number_cells", _number_cells)
    md.add_render_rule("image", _figure)
    return md


def _convert(markdown: str) -> tuple[str, str]:
    """The HTML body of a Markdown card, and its title (the text of its first `#` heading)."""
    md = card_markdown()
    env: dict = {}
    tokens = md.parse(markdown, env)
    title = next(
        (
            tokens[i + 1].content
            for i, t in enumerate(tokens)
            if t.type == "heading_open" and t.tag == "h1"
        ),
        "",
    )
    return md.renderer.render(tokens, md.options, env), title


def markdown_to_html(markdown: str) -> str:
    """The HTML body of a Markdown card (no page around it): see `card_markdown`."""
    return _convert(markdown)[0]


def html_page(body: str, title: str, lang: str = "en") -> str:
    """A complete, self-contained HTML document around a converted Markdown body."""
    lang_attr = "zh-CN" if lang == "zh" else "en"
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{lang_attr}">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{html.escape(title)}</title>\n"
        f"<style>\n{_template_text(STYLE)}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )
