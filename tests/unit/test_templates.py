"""Tests of abscopal.templates: the jinja2 environment of the reports (strict, autoescaping HTML, not Markdown), its
filters and the shared macros."""

from __future__ import annotations

import base64

import jinja2
import pytest

from abscopal.plot import png_data_uri
from abscopal.templates import environment, md_cell, render

SCRIPT = "<script>alert('x')</script>"
ESCAPED = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"
TEMPLATES = ("base.html.j2", "macros.html.j2", "study_report.html.j2", "fit_report.html.j2", "fit_report.md.j2")


def _macro(call: str, **context) -> str:
    """Render ``call`` (a call of a macro of macros.html.j2 named ``m``) as an HTML template."""
    source = '{% import "macros.html.j2" as m %}' + call
    return environment().from_string(source).render(**context)


def test_environment_is_built_once_with_the_report_settings():
    env = environment()
    assert environment() is env
    assert env.undefined is jinja2.StrictUndefined
    assert env.trim_blocks and env.lstrip_blocks and env.keep_trailing_newline
    assert isinstance(env.loader, jinja2.PackageLoader)
    assert {"data_uri", "md_cell"} <= set(env.filters)


def test_every_template_ships_with_the_package_and_parses():
    assert set(TEMPLATES) <= set(environment().list_templates(extensions=["j2"]))
    for name in TEMPLATES:
        environment().get_template(name)


def test_a_missing_variable_raises_instead_of_printing_nothing():
    with pytest.raises(jinja2.UndefinedError, match="title"):
        render("base.html.j2")
    with pytest.raises(jinja2.UndefinedError, match="missing"):
        environment().from_string("{{ missing }}").render()
    with pytest.raises(jinja2.UndefinedError):  # attribute of a missing key too
        environment().from_string("{{ d.missing }}").render(d={})


def test_html_templates_escape_markdown_templates_do_not():
    env = environment()
    assert env.autoescape("study_report.html.j2") and env.autoescape("x.html")
    assert not env.autoescape("fit_report.md.j2")
    page = render("base.html.j2", title=SCRIPT)
    assert SCRIPT not in page and f"<title>{ESCAPED}</title>" in page and f"<h1>{ESCAPED}</h1>" in page
    assert environment().from_string("{{ x }}").render(x=SCRIPT) == ESCAPED  # strings: escaped as well


def test_data_uri_filter():
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    uri = environment().from_string("{{ png | data_uri }}").render(png=png)
    assert uri == png_data_uri(png)
    assert uri.startswith("data:image/png;base64,") and base64.b64decode(uri.split(",", 1)[1]) == png


def test_md_cell_filter():
    assert md_cell("a | b\nc") == "a \\| b c"
    assert md_cell(3) == "3" and md_cell(None) == "None"
    assert environment().from_string("{{ x | md_cell }}").render(x="p|q") == "p\\|q"


def test_table_macro_escapes_and_marks_columns():
    out = _macro(
        "{{ m.table(h, rows, right=(1,), code=(2,)) }}", h=["name", SCRIPT, "hash"], rows=[[SCRIPT, 1.5, "ab"]]
    )
    assert SCRIPT not in out
    assert f"<tr><th>name</th><th>{ESCAPED}</th><th>hash</th></tr>" in out
    assert f'<tr><td>{ESCAPED}</td><td class="n">1.5</td><td><code>ab</code></td></tr>' in out


def test_kv_table_and_list_macros_escape():
    out = _macro("{{ m.kv_table(items) }}{{ m.bullet_list(lines) }}", items=[("k", SCRIPT)], lines=[SCRIPT, "b"])
    assert SCRIPT not in out
    assert f"<tr><th>k</th><td>{ESCAPED}</td></tr>" in out and f"<li>{ESCAPED}</li>" in out and "<li>b</li>" in out


def test_figure_macro_embeds_the_png_and_escapes_the_caption():
    png = b"\x89PNG\r\n\x1a\nabc"
    out = _macro('{{ m.figure("forest", png, cap, id="f1", label="forest.png") }}', png=png, cap=SCRIPT)
    assert f'<figure id="f1"><img alt="forest" src="{png_data_uri(png)}">' in out
    assert f"<figcaption><b>forest.png</b>: {ESCAPED}</figcaption>" in out
    plain = _macro('{{ m.figure("r", png, "caption") }}', png=png)
    assert "<figure><img" in plain and "<figcaption>caption</figcaption>" in plain
