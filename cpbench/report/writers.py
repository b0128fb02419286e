"""The report's HTML and Markdown, rendered by Jinja2 templates (report/templates/) from the
sections: HTML is autoescaped, so a name or message in a result can never inject markup."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from functools import lru_cache

from markupsafe import Markup, escape

from cpbench import __version__

CLAIMS_HEADER = ["claim", "source", "evidence (and the machine it comes from)", "holds there?"]


def _strong(text: str) -> Markup:
    """**bold** in a paragraph, after escaping everything else."""
    return Markup(re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", str(escape(text))))


@lru_cache(maxsize=2)
def _environment(autoescape: bool):
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("cpbench.report", "templates"), autoescape=autoescape,
                      undefined=StrictUndefined, keep_trailing_newline=True)
    env.filters["strong"] = _strong
    return env


def _render(name: str, report, autoescape: bool) -> str:
    template = _environment(autoescape).get_template(name)
    return template.render(version=__version__, date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                           claims_header=CLAIMS_HEADER, claims=report.claims, sections=report.sections)


def to_markdown(report) -> str:
    return _render("report.md.j2", report, autoescape=False)


def to_html(report) -> str:
    return _render("report.html.j2", report, autoescape=True)
