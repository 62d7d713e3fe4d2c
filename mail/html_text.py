"""Plain text from HTML, for grammars, language detection and quoting.

White space in the source is one space, as a browser shows it (but inside <pre>); lines
break where blocks and <br> do, and table cells stay apart."""

from __future__ import annotations

import re
from html.parser import HTMLParser

_SPACE = re.compile(r"\s+")


class _TextExtractor(HTMLParser):
    _SKIP = frozenset({"script", "style", "head", "title"})
    _BLOCK = frozenset(
        {"p", "div", "li", "tr", "table", "ul", "ol", "blockquote", "pre", "hr"}
        | {"h1", "h2", "h3", "h4", "h5", "h6"}
    )
    _CELL = frozenset({"td", "th"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._skipping = 0
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag == "br":
            self.chunks.append("\n")
        elif tag in self._BLOCK:
            self._pre += tag == "pre"
            self._break()
        elif tag in self._CELL and self.chunks and not self.chunks[-1].endswith("\n"):
            self.chunks.append(" ")

    def handle_startendtag(self, tag: str, attrs: object) -> None:
        self.handle_starttag(tag, attrs)  # <br/> is one break, not a start and an end

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self._BLOCK:
            self._pre -= tag == "pre" and self._pre > 0
            self._break()

    def handle_data(self, data: str) -> None:
        if self._skipping:
            return
        if not self._pre:
            data = _SPACE.sub(" ", data)
            if not self.chunks or self.chunks[-1].endswith((" ", "\n")):
                data = data.lstrip(" ")
        if data:
            self.chunks.append(data)

    def _break(self) -> None:
        if self.chunks and not self.chunks[-1].endswith("\n"):
            self.chunks.append("\n")


def html_to_text(html: str) -> str:
    extractor = _TextExtractor()
    try:
        extractor.feed(html)
        extractor.close()
    except Exception:
        return re.sub(r"<[^>]*>", " ", html)
    lines = (line.rstrip() for line in "".join(extractor.chunks).splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
