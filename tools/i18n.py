"""The book's translations: gettext catalogs of its prose, checked for freshness, built into editions.

The code of every chapter is the same in every language; only the prose is translated. The
translations live in standard gettext PO catalogs, ``locales/<lang>/LC_MESSAGES/<page>.po`` (Poedit,
Weblate and Crowdin edit them), one entry per markdown cell of a notebook and per block of a markdown
page, the English text as ``msgid``:

- a notebook's markdown cell is keyed by its cell id (``msgctxt``), so that its entry is found again
  after other cells move; the caption and the alt text of a figure, in its code cell's metadata
  (``mystnb.figure.caption``, ``mystnb.image.alt``), by the cell id with ``:caption`` or ``:alt``;
- a markdown page's block (a paragraph, a list, a table, a fenced directive, a heading) is keyed by the
  heading above it and its position under that heading;
- the book's title and the table of contents' part captions are in ``_book.po``.

``python tools/i18n.py update [LANG]`` extracts the entries from the English sources and merges them
into the catalogs as ``msgmerge`` does: an entry whose English changed keeps its translation, marked
fuzzy, with the English it translated as ``#| msgid``; new entries are untranslated; entries whose
source is gone become obsolete (``#~``).

``python tools/i18n.py check [LANG]`` lists every entry of the English sources that has no
translation, a fuzzy one, or one whose ``msgid`` is not the current English, by page and cell; it fails
if there is any.

``python tools/i18n.py sources OUT [LANG]`` writes the translated book into ``OUT``: the notebooks with
their code cells, tags and metadata untouched (figure captions and alt text aside) and their markdown
from the catalogs, each with the outputs of the English build's execution (from the jupyter-cache of
``make book``, matched on the code cells, so nothing is executed again and every glued number is the
English edition's); the markdown pages translated block by block; the configuration with the
language set. It refuses a catalog that ``check`` would reject: no edition is built from stale text.

``python tools/i18n.py site OUT [LANG]`` writes those sources into ``_build/<LANG>/src``, each notebook
also into a jupyter-cache of the edition's own (with the English execution's record, for the status
page), builds the translated site from it (strict, as the English one, executing nothing; its search
knows the glossary's Chinese terms as words) and copies it to ``OUT`` (``_build/html/zh_CN`` beside the
English site). With ``--draft``, ``sources`` and ``site`` keep the English of entries not yet
translated: a preview for translators.

``check`` also compares each translation's markup with its English: the roles and their targets, the
glue keys, code spans, labels, directives and their options, link targets and math must be kept.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import polib
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from editions import CACHE, ROOT, EditionCache, build, executed

LOCALES = ROOT / "locales"
LANGUAGES = ("zh_CN",)
BOOK_CATALOG = "_book"
# The words that the book's configuration and extensions put on every page, which Sphinx's own
# translations do not cover: the figures' numbers and MyST-NB's buttons of a hidden code cell.
SPHINX_TEXTS = {
    "zh_CN": {
        "numfig_format": {"figure": "图 %s"},
        "nb_code_prompt_show": "显示代码单元格",
        "nb_code_prompt_hide": "隐藏代码单元格",
    }
}
# The figure texts of a code cell that are prose: (metadata path, key suffix).
FIGURE_TEXTS = ((("mystnb", "figure", "caption"), "caption"), (("mystnb", "image", "alt"), "alt"))
_FENCE = re.compile(r"^ {0,3}(`{3,}|:{3,})")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


@dataclass(frozen=True)
class Entry:
    """One translatable piece of the English sources."""

    context: str  # msgctxt: where the piece is, stable when unrelated pieces move
    text: str  # msgid: the English
    source: str  # the English file, relative to the book's root
    index: int  # the cell's index in a notebook; the block's in a markdown page
    where: str  # for people: "book/01_background.ipynb, cell 12"


def sources(root: Path = ROOT) -> list[Path]:
    """The English pages, in the order of the table of contents: notebooks and markdown pages."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [chapter["file"] for chapter in part.get("chapters", [])]
    found = []
    for name in files:
        matches = [p for p in (root / f"{name}.ipynb", root / f"{name}.md") if p.exists()]
        if len(matches) != 1:
            raise ValueError(f"{name} in _toc.yml must be exactly one of {name}.ipynb or {name}.md")
        found.append(matches[0])
    return found


def catalog_path(page: Path, language: str, root: Path = ROOT) -> Path:
    return root / "locales" / language / "LC_MESSAGES" / f"{page.stem}.po"


def _get(mapping: dict, path: tuple[str, ...]) -> object:
    for key in path:
        if not isinstance(mapping, dict) or key not in mapping:
            return None
        mapping = mapping[key]
    return mapping


def markdown_blocks(text: str) -> list[str]:
    """``text`` split into blocks at blank lines outside fenced blocks (a fence stays one block)."""
    blocks: list[list[str]] = [[]]
    fence: str | None = None
    for line in text.split("\n"):
        match = _FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)
        elif fence is not None and line.strip() and set(line.strip()) == {fence[0]} and len(line.strip()) >= len(fence):
            fence = None
        if fence is None and not line.strip():
            blocks.append([])
        else:
            blocks[-1].append(line)
    return ["\n".join(b) for b in blocks if b]


def _has_prose(block: str) -> bool:
    """Whether a markdown block has words to translate (a bare directive such as a bibliography has none)."""
    lines = [line for line in block.split("\n") if not _FENCE.match(line) and not re.match(r"^\s*:[\w-]+:", line)]
    return bool(re.search(r"[^\W\d_]", "\n".join(lines)))


def _slug(heading: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-") or "top"


def page_entries(page: Path, root: Path = ROOT) -> list[Entry]:
    """The translatable pieces of one English page."""
    relative = page.relative_to(root).as_posix()
    entries: list[Entry] = []
    if page.suffix == ".ipynb":
        notebook = nbformat.read(page, as_version=4)
        for index, cell in enumerate(notebook.cells):
            where = f"{relative}, cell {index}"
            if "id" not in cell:
                raise ValueError(f"{where} has no cell id: save the notebook with nbformat 4.5")
            if cell.cell_type == "markdown" and cell.source.strip():
                entries.append(Entry(cell.id, cell.source, relative, index, where))
            elif cell.cell_type == "code":
                for path, suffix in FIGURE_TEXTS:
                    text = _get(cell.metadata, path)
                    if isinstance(text, str) and text.strip():
                        entries.append(Entry(f"{cell.id}:{suffix}", text, relative, index, f"{where} ({suffix})"))
        return entries
    section, position = "top", 0
    for index, block in enumerate(markdown_blocks(page.read_text())):
        heading = _HEADING.match(block) if "\n" not in block else None
        if heading:
            section, position = _slug(heading.group(2)), 0
        if _has_prose(block):
            where = f"{relative}, under '{section}', block {position}"
            entries.append(Entry(f"{section}:{position}", block, relative, index, where))
        position += 1
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry.context] = counts.get(entry.context, 0) + 1
    seen: dict[str, int] = {}
    unique = []
    for entry in entries:  # two sections with the same heading: number the repeats
        n = seen[entry.context] = seen.get(entry.context, -1) + 1
        context = f"{entry.context}~{n}" if counts[entry.context] > 1 else entry.context
        unique.append(Entry(context, entry.text, entry.source, entry.index, entry.where))
    entries = unique
    return entries


def book_entries(root: Path = ROOT) -> list[Entry]:
    """The book's title and the captions of the table of contents' parts."""
    config = yaml.safe_load((root / "_config.yml").read_text())
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    entries = [Entry("title", config["title"], "_config.yml", 0, "_config.yml, title")]
    for index, part in enumerate(toc.get("parts", [])):
        if "caption" in part:
            where = f"_toc.yml, the caption of part {index}"
            entries.append(Entry(f"part:{part['caption']}", part["caption"], "_toc.yml", index, where))
    return entries


def all_entries(root: Path = ROOT) -> dict[str, tuple[Path | None, list[Entry]]]:
    """Every catalog's name with its English page (None for ``_book``) and its entries."""
    out: dict[str, tuple[Path | None, list[Entry]]] = {BOOK_CATALOG: (None, book_entries(root))}
    for page in sources(root):
        if page.stem in out:
            raise ValueError(f"two pages named {page.stem}: a catalog is named for its page")
        out[page.stem] = (page, page_entries(page, root))
    return out


def _new_catalog(language: str) -> polib.POFile:
    po = polib.POFile(wrapwidth=0)
    po.metadata = {
        "Project-Id-Version": "GAE: From Theory to Practice",
        "Language": language,
        "MIME-Version": "1.0",
        "Content-Type": "text/plain; charset=UTF-8",
        "Content-Transfer-Encoding": "8bit",
        "Plural-Forms": "nplurals=1; plural=0;",
    }
    return po


def merge(po: polib.POFile, entries: list[Entry]) -> tuple[polib.POFile, dict[str, int]]:
    """``po`` updated to ``entries``, as msgmerge would; with counts of kept, fuzzy, new and obsolete."""
    old = {e.msgctxt: e for e in po if not e.obsolete}
    by_text = {e.msgid: e for e in po if not e.obsolete and e.msgstr and "fuzzy" not in e.flags}
    merged = _new_catalog(po.metadata.get("Language", ""))
    merged.metadata.update(po.metadata)
    counts = {"kept": 0, "fuzzy": 0, "new": 0, "obsolete": 0}
    for entry in entries:
        new = polib.POEntry(
            msgctxt=entry.context,
            msgid=entry.text,
            msgstr="",
            occurrences=[(entry.source, str(entry.index))],
            comment=entry.where,
        )
        previous = old.pop(entry.context, None)
        if previous is not None and previous.msgid == entry.text:
            new.msgstr, new.flags = previous.msgstr, list(previous.flags)
            new.previous_msgid = previous.previous_msgid
            counts["fuzzy" if "fuzzy" in new.flags else "kept"] += 1
        elif previous is not None:
            new.msgstr, new.previous_msgid = previous.msgstr, previous.msgid
            new.flags = ["fuzzy"] if previous.msgstr else []
            counts["fuzzy" if previous.msgstr else "new"] += 1
        elif entry.text in by_text:  # the same English elsewhere (a cell given a new id): the same translation
            new.msgstr = by_text[entry.text].msgstr
            counts["kept"] += 1
        else:
            counts["new"] += 1
        merged.append(new)
    for gone in old.values():
        if gone.msgstr:
            gone.obsolete = True
            merged.append(gone)
            counts["obsolete"] += 1
    return merged, counts


def update(language: str, root: Path = ROOT) -> dict[str, dict[str, int]]:
    """Extract the English entries and merge them into every catalog of ``language``."""
    report = {}
    for name, (_, entries) in all_entries(root).items():
        path = root / "locales" / language / "LC_MESSAGES" / f"{name}.po"
        po = polib.pofile(str(path), wrapwidth=0) if path.exists() else _new_catalog(language)
        merged, report[name] = merge(po, entries)
        path.parent.mkdir(parents=True, exist_ok=True)
        merged.save(str(path))
    return report


def problems(language: str, root: Path = ROOT) -> list[str]:
    """Every English entry without a current translation in ``language``, one line each."""
    found = []
    for name, (_, entries) in all_entries(root).items():
        path = root / "locales" / language / "LC_MESSAGES" / f"{name}.po"
        if not path.exists():
            found.append(f"{name}: no catalog {path.relative_to(root)} (run `python tools/i18n.py update`)")
            continue
        po = {e.msgctxt: e for e in polib.pofile(str(path)) if not e.obsolete}
        for entry in entries:
            translated = po.get(entry.context)
            if translated is None:
                found.append(f"{entry.where}: not in the catalog")
            elif translated.msgid != entry.text:
                found.append(f"{entry.where}: the catalog translates other English (run update)")
            elif not translated.msgstr.strip():
                found.append(f"{entry.where}: untranslated")
            elif "fuzzy" in translated.flags:
                found.append(f"{entry.where}: fuzzy (the English changed since it was translated)")
            else:
                found += [f"{entry.where}: {d}" for d in markup_differences(entry.text, translated.msgstr)]
    return found


_ROLE = re.compile(r"(?<!`)\{([\w:-]+)\}`([^`]*)`")
_CODE = re.compile(r"(?<![}`])`((?:[^`\n]|\n(?![ \t]*\n))+)`(?!`)")  # over a line break too
_LABEL = re.compile(r"^\(([^)\s]+)\)=\s*$", re.M)
_DIRECTIVE = re.compile(r"^ {0,3}(?:`{3,}|:{3,})\{([\w:-]+)\}", re.M)
_OPTION = re.compile(r"^\s*:(label|name|class|tags|width|align|enumerated|nonumber):\s*(.*?)\s*$", re.M)
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_DISPLAY_MATH = re.compile(r"\$\$(.+?)\$\$", re.S)
# Inline math may run over a line break of its paragraph, not over a blank line.
_INLINE_MATH = re.compile(r"(?<![\\$])\$(?!\$)((?:[^$\n]|\n(?![ \t]*\n))+?)(?<!\\)\$")


def _role_target(role: str, content: str) -> str:
    """What a role points at: its target (``text <target>``) or its content; glue keys and math whole."""
    if role in ("math", "glue:text", "glue:", "glue", "glue:any", "glue:figure", "glue:math"):
        return content
    match = re.search(r"<([^<>]+)>\s*$", content)
    return match.group(1) if match else content


def markup(text: str) -> dict[str, list[str]]:
    """The parts of a piece of markdown that a translation must keep as they are, each kind sorted.

    Labels, directives, their options and display math must come back in the same number and order;
    roles (with their targets and glue keys), code spans, link targets and inline math as the same set,
    since a translation may say a thing twice or once where the English did the opposite."""
    display = _DISPLAY_MATH.findall(text)
    rest = _DISPLAY_MATH.sub(" ", text)
    roles = [f"{{{r}}}{_role_target(r, c)}" for r, c in _ROLE.findall(rest)]
    rest = _ROLE.sub(" ", rest)
    inline = _INLINE_MATH.findall(_CODE.sub(" ", rest))
    return {
        "label": _LABEL.findall(text),
        "directive": _DIRECTIVE.findall(text),
        "option": [f":{k}: {v}" for k, v in _OPTION.findall(text)],
        "display math": [" ".join(m.split()) for m in display],
        "role": sorted(set(roles)),
        "code": sorted({" ".join(m.split()) for m in _CODE.findall(rest)}),
        "link": sorted(set(_LINK.findall(rest))),
        "inline math": sorted({" ".join(m.split()) for m in inline}),
    }


def markup_differences(english: str, translated: str) -> list[str]:
    """How ``translated`` breaks the markup of ``english``: roles, glue keys, code, labels, directives,
    link targets or math that it drops, adds or changes. Empty when the markup is kept."""
    found = []
    source, target = markup(english), markup(translated)
    for kind, expected in source.items():
        got = target[kind]
        if got == expected:
            continue
        missing = [x for x in expected if x not in got]
        extra = [x for x in got if x not in expected]
        parts = [f"missing {missing[:3]!r}" if missing else "", f"not in the English {extra[:3]!r}" if extra else ""]
        detail = (
            "; ".join(p for p in parts if p)
            or f"{len(expected)} in the English, {len(got)} in the translation, or in another order"
        )
        found.append(f"{kind}: {detail}")
    return found


def _translations(name: str, language: str, root: Path) -> dict[str, str]:
    path = root / "locales" / language / "LC_MESSAGES" / f"{name}.po"
    po = polib.pofile(str(path)) if path.exists() else []
    return {e.msgctxt: e.msgstr for e in po if not e.obsolete and e.msgstr.strip() and "fuzzy" not in e.flags}


def translate_notebook(notebook: nbformat.NotebookNode, strings: dict[str, str]) -> nbformat.NotebookNode:
    """A copy of ``notebook`` with its markdown cells and figure texts from ``strings`` (by msgctxt)."""
    translated = copy.deepcopy(notebook)
    for cell in translated.cells:
        if cell.cell_type == "markdown" and cell.source.strip():
            cell.source = strings.get(cell.id, cell.source)
        elif cell.cell_type == "code":
            for path, suffix in FIGURE_TEXTS:
                if isinstance(_get(cell.metadata, path), str) and f"{cell.id}:{suffix}" in strings:
                    target = cell.metadata
                    for key in path[:-1]:
                        target = target[key]
                    target[path[-1]] = strings[f"{cell.id}:{suffix}"]
    return translated


def translate_page(page: Path, strings: dict[str, str], root: Path = ROOT) -> str:
    """The translated text of a markdown page: each block with prose translated, the others as they are."""
    translated = {e.index: strings[e.context] for e in page_entries(page, root) if e.context in strings}
    blocks = markdown_blocks(page.read_text())
    return "\n\n".join(translated.get(i, block) for i, block in enumerate(blocks)) + "\n"


def write_sources(
    out: Path,
    language: str,
    root: Path = ROOT,
    cache_path: Path | None = CACHE,
    draft: bool = False,
    edition_cache: Path | None = None,
) -> None:
    """The translated book's sources in ``out`` (see the module's docstring): the notebooks with the
    English execution's outputs from the jupyter-cache at ``cache_path`` (without outputs if it is None),
    and each also stored in a jupyter-cache of the edition's own at ``edition_cache``, if given. A
    ``draft`` keeps the English of every entry that is not translated and current, for translators to
    preview their work; it is never published."""
    stale = problems(language, root)
    if stale and not draft:
        raise ValueError(f"{len(stale)} entries of {language} are not current; the first: {stale[0]}")
    out.mkdir(parents=True, exist_ok=True)
    book_strings = _translations(BOOK_CATALOG, language, root)
    config = yaml.safe_load((root / "_config.yml").read_text())
    config["title"] = book_strings.get("title", config["title"])
    sphinx_config = config.setdefault("sphinx", {}).setdefault("config", {})
    sphinx_config["language"] = language
    sphinx_config.update(SPHINX_TEXTS.get(language, {}))
    config["execute"]["execute_notebooks"] = "off"  # the outputs come with the notebooks
    (out / "_config.yml").write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    for part in toc.get("parts", []):
        if "caption" in part:
            part["caption"] = book_strings.get(f"part:{part['caption']}", part["caption"])
    (out / "_toc.yml").write_text(yaml.safe_dump(toc, allow_unicode=True, sort_keys=False))
    for shared in ("_static", "_templates", "tools", "references.bib"):
        link = out / shared
        if not link.exists():
            link.symlink_to(root / shared)
    cache = EditionCache(edition_cache) if edition_cache is not None else None
    for page in sources(root):
        target = out / page.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        strings = _translations(page.stem, language, root)
        if page.suffix != ".ipynb":
            target.write_text(translate_page(page, strings, root))
            continue
        notebook, data = nbformat.read(page, as_version=4), {}
        if cache_path is not None:
            data, notebook = executed(notebook, page.name, cache_path)
        translated = translate_notebook(notebook, strings)
        nbformat.write(translated, target)
        if cache is not None:
            cache.add(translated, target, data)


def search_words(root: Path = ROOT) -> list[str]:
    """The Chinese terms of the glossary (``book/glossary.md``'s 中文 column), each a word of its own for
    the search index: Sphinx's Chinese search segments the text with jieba, whose dictionary would
    split 优势函数 into 优势 and 函数, so that a search for the term found nothing."""
    words: list[str] = []
    for line in (root / "book" / "glossary.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or cells[0] == "English" or not re.search(r"[\u4e00-\u9fff]", cells[1]):
            continue
        for part in re.split(r"[/；，、]", re.sub(r"（[^）]*）", "", cells[1])):
            part = part.strip()
            if len(part) >= 2 and re.fullmatch(r"[\u4e00-\u9fff–-]+", part) and part not in words:
                words.append(part)
    return words


class _LatinTerms(set):
    """The Latin words Sphinx's Chinese search has met, in a set that takes them as its list did."""

    extend = set.update


def _chinese_search_in_linear_time() -> None:
    """Sphinx 7's Chinese search keeps every Latin word of the site in a list, ``latin_terms``, and looks
    up each word it stems in that list: quadratic in the site's length, and half the Chinese build's
    time. Sphinx 8.1 keeps them in a set (sphinx-doc/sphinx#12995), which answers the same lookups;
    Jupyter Book 1 needs Sphinx 7, so the set is put in here."""
    from sphinx.search import zh

    if isinstance(zh.SearchChinese.latin_terms, list):
        zh.SearchChinese.latin_terms = _LatinTerms(zh.SearchChinese.latin_terms)


def build_site(
    out: Path, language: str, root: Path = ROOT, cache_path: Path | None = CACHE, draft: bool = False
) -> int:
    """Build the ``language`` edition's HTML into ``out`` from its sources, reusing the English
    execution (nothing runs); return Sphinx's status."""
    import shutil

    work = root / "_build" / language
    source, edition_cache = work / "src", work / ".jupyter_cache"
    shutil.rmtree(work, ignore_errors=True)
    write_sources(source, language, root, cache_path, draft, edition_cache)
    dictionary = work / "search_words.txt"
    dictionary.write_text("".join(f"{word}\n" for word in search_words(root)))
    # MyST-NB writes a build's images next to its output folder: build in the edition's own folder, so
    # that none land in the English site, then copy the site to ``out``.
    _chinese_search_in_linear_time()
    status = build(source, work / "html", edition_cache, html_search_options={"dict": str(dictionary)})
    if status == 0:
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(work / "html", out)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("update", "check"):
        command = commands.add_parser(name)
        command.add_argument("language", nargs="?", default=LANGUAGES[0], choices=LANGUAGES)
    for name in ("sources", "site"):
        command = commands.add_parser(name)
        command.add_argument("out", type=Path)
        command.add_argument("language", nargs="?", default=LANGUAGES[0], choices=LANGUAGES)
        command.add_argument("--draft", action="store_true", help="keep the English of untranslated entries")
    args = parser.parse_args(argv)
    if args.command == "update":
        for name, counts in update(args.language).items():
            print(f"{name}: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v))
        return 0
    if args.command == "check":
        found = problems(args.language)
        print("\n".join(found) if found else f"every entry of {args.language} is translated and current")
        return 1 if found else 0
    if args.command == "site":
        return build_site(args.out, args.language, draft=args.draft)
    write_sources(args.out, args.language, draft=args.draft)
    return 0


if __name__ == "__main__":
    sys.exit(main())
