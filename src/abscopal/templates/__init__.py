"""Jinja2 templates of the reports: the study report and the fit report (HTML and Markdown).

The report modules (:mod:`abscopal.studies.report`, :mod:`abscopal.calibrate.report`) compute every table, number
and sentence as plain strings, lists and dicts; the templates in this package lay them out:

``base.html.j2``
    The page shell shared by the HTML reports: stylesheet, ``<title>``, the ``<h1>`` and the blocks ``content``
    and ``footer`` (the study report puts its provenance there).
``macros.html.j2``
    Tables (``table``: header row and rows; ``kv_table``: one ``<th>`` key and ``<td>`` value per row, the
    provenance lists), figures with their captions (``figure``) and bullet lists (``bullet_list``).
``study_report.html.j2``, ``fit_report.html.j2``, ``fit_report.md.j2``
    The reports.

:func:`environment` escapes every value inserted into an HTML template (autoescape; values marked safe with
:class:`markupsafe.Markup` are the only exception, and the report modules pass none), raises on an undefined
variable (:class:`jinja2.StrictUndefined`) instead of printing an empty string, and strips the newline after a block
tag and the indentation before it, so templates can be indented. Filters:

``data_uri``
    PNG bytes as a ``data:image/png;base64,...`` URI (:func:`abscopal.plot.png_data_uri`).
``md_cell``
    Text for one Markdown table cell: ``|`` escaped, newlines as spaces.
"""

from __future__ import annotations

from functools import cache
from typing import Any

__all__ = ["environment", "md_cell", "render"]


def md_cell(value: Any) -> str:
    """``value`` as the text of one Markdown table cell: ``|`` escaped as ``\\|``, newlines replaced by spaces."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _data_uri(png: bytes) -> str:
    from ..plot import png_data_uri

    return png_data_uri(png)


@cache
def environment() -> Any:
    """The :class:`jinja2.Environment` of the report templates (built once).

    Templates are loaded from this package (``PackageLoader("abscopal", "templates")``); names ending in ``.html``,
    ``.htm``, ``.xml`` (also before ``.j2``) are autoescaped, Markdown templates are not.
    """
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("abscopal", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html", "htm", "xml", "html.j2", "htm.j2", "xml.j2"), default_for_string=True
        ),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["data_uri"] = _data_uri
    env.filters["md_cell"] = md_cell
    return env


def render(name: str, /, **context: Any) -> str:
    """Render the template ``name`` of this package with ``context``."""
    return environment().get_template(name).render(**context)
