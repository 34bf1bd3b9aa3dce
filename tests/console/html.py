"""A small reader of the console's pages for the tests, on the standard library's HTML parser: the page as a
tree of elements, found by tag and attributes, with their text as a person reads it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"})


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element | str] = field(default_factory=list)

    def text(self) -> str:
        parts = [child if isinstance(child, str) else child.text() for child in self.children]
        return re.sub(r"\s+", " ", " ".join(parts)).strip()

    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def all(self, tag: str | None = None, **attrs: str) -> Iterator[Element]:
        for child in self.children:
            if isinstance(child, Element):
                wanted = {key.replace("_", "-"): value for key, value in attrs.items()}
                if (tag is None or child.tag == tag) and all(child.attrs.get(k) == v for k, v in wanted.items()):
                    yield child
                yield from child.all(tag, **attrs)

    def one(self, tag: str | None = None, **attrs: str) -> Element:
        found = next(self.all(tag, **attrs), None)
        assert found is not None, f"no <{tag or '*'}> with {attrs}"
        return found


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {name: value or "" for name, value in attrs})
        self.stack[-1].children.append(element)
        if tag not in VOID:
            self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def page(html: str | bytes) -> Element:
    builder = _Builder()
    builder.feed(html.decode() if isinstance(html, bytes) else html)
    return builder.root


def figures(row: Element) -> dict[str, str]:
    """The revenue, cost and margin cells of a figures row, by name."""
    return {cell.attrs["data-figure"]: cell.text() for cell in row.all("td") if "data-figure" in cell.attrs}


def table_row(html: str | bytes, table: str, **key: str) -> Element:
    return page(html).one("table", data_table=table).one("tr", **key)


def body_rows(html: str | bytes, table: str) -> list[Element]:
    return list(page(html).one("table", data_table=table).one("tbody").all("tr"))


def form_values(html: str | bytes) -> dict[str, str]:
    """What a browser would submit from the page's form as it stands (checked boxes, selected options, text)."""
    form = page(html).one("form", id=next(
        element.attrs["id"] for element in page(html).all("form") if element.attrs.get("id", "").endswith("_form")
    ))  # fmt: skip
    values: dict[str, str] = {}
    for box in form.all("input"):
        kind, name = box.attrs.get("type", "text"), box.attrs.get("name")
        if not name or kind in {"submit", "button"} or (kind == "checkbox" and "checked" not in box.attrs):
            continue
        values[name] = box.attrs.get("value", "on" if kind == "checkbox" else "")
    for select in form.all("select"):
        options = list(select.all("option"))
        chosen = next((o for o in options if "selected" in o.attrs), options[0] if options else None)
        if chosen is not None:
            values[select.attrs["name"]] = chosen.attrs.get("value", chosen.text())
    for area in form.all("textarea"):
        values[area.attrs["name"]] = "".join(child for child in area.children if isinstance(child, str)).strip()
    return values
