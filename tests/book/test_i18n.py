"""tools/i18n.py on a small book of its own: catalogs, freshness, and the translated sources."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import nbformat
import polib
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("i18n", ROOT / "tools" / "i18n.py")
assert spec is not None and spec.loader is not None
i18n = importlib.util.module_from_spec(spec)
sys.modules["i18n"] = i18n
spec.loader.exec_module(i18n)

LANG = "zh_CN"
INTRO = "# Intro\n\nFirst paragraph,\non two lines.\n\n```{bibliography}\n```\n\n## Next\n\n- a list\n- of two\n"


def figure_cell() -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell("plot()", id="fig")
    cell.metadata = {
        "tags": ["hide-input"],
        "mystnb": {"figure": {"caption": "The loss falls."}, "image": {"alt": "A falling line."}},
    }
    return cell


def make_book(root: Path) -> Path:
    (root / "book").mkdir(parents=True)
    (root / "_config.yml").write_text(yaml.safe_dump({"title": "A Book", "execute": {"execute_notebooks": "cache"}}))
    toc = {
        "format": "jb-book",
        "root": "book/intro",
        "parts": [{"caption": "Basics", "chapters": [{"file": "book/ch"}]}],
    }
    (root / "_toc.yml").write_text(yaml.safe_dump(toc))
    (root / "book" / "intro.md").write_text(
        "# Intro\n\nFirst paragraph,\non two lines.\n\n```{bibliography}\n```\n\n## Next\n\n- a list\n- of two\n"
    )
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Chapter\n\nSome prose.", id="title"),
        nbformat.v4.new_code_cell("x = 1\nprint(x)", id="code"),
        figure_cell(),
        nbformat.v4.new_markdown_cell("More prose with {glue:text}`x`.", id="more"),
    ]
    nbformat.write(nb, root / "book" / "ch.ipynb")
    return root


def translate_all(root: Path) -> None:
    for path in (root / "locales" / LANG / "LC_MESSAGES").glob("*.po"):
        po = polib.pofile(str(path))
        for entry in po:
            entry.msgstr = "译：" + entry.msgid
            entry.flags = [f for f in entry.flags if f != "fuzzy"]
        po.save()


def catalog(root: Path, name: str) -> dict[str, polib.POEntry]:
    return {e.msgctxt: e for e in polib.pofile(str(root / "locales" / LANG / "LC_MESSAGES" / f"{name}.po"))}


def test_update_writes_one_entry_per_markdown_cell_figure_text_and_page_block(tmp_path):
    root = make_book(tmp_path)
    i18n.update(LANG, root)
    ch = catalog(root, "ch")
    assert set(ch) == {"title", "fig:caption", "fig:alt", "more"}
    assert ch["title"].msgid == "# Chapter\n\nSome prose." and ch["title"].msgstr == ""
    assert ch["more"].occurrences == [("book/ch.ipynb", "3")]
    intro = catalog(root, "intro")
    assert [e.msgid for e in intro.values()] == [
        "# Intro",
        "First paragraph,\non two lines.",
        "## Next",
        "- a list\n- of two",
    ]
    assert set(catalog(root, "_book")) == {"title", "part:Basics"}


def test_check_names_the_page_and_cell_of_every_untranslated_entry_until_all_are_done(tmp_path):
    root = make_book(tmp_path)
    i18n.update(LANG, root)
    found = i18n.problems(LANG, root)
    assert "book/ch.ipynb, cell 0: untranslated" in found and "book/ch.ipynb, cell 2 (alt): untranslated" in found
    assert len(found) == 4 + 4 + 2
    translate_all(root)
    assert i18n.problems(LANG, root) == []


def test_changing_one_english_sentence_fails_the_check_until_the_translation_is_updated(tmp_path):
    root = make_book(tmp_path)
    i18n.update(LANG, root)
    translate_all(root)
    path = root / "book" / "ch.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells[3].source = "Changed prose with {glue:text}`x`."
    nbformat.write(nb, path)
    assert i18n.problems(LANG, root) == ["book/ch.ipynb, cell 3: the catalog translates other English (run update)"]
    counts = i18n.update(LANG, root)["ch"]
    assert counts == {"kept": 3, "fuzzy": 1, "new": 0, "obsolete": 0}
    entry = catalog(root, "ch")["more"]
    assert "fuzzy" in entry.flags and entry.previous_msgid == "More prose with {glue:text}`x`."
    assert entry.msgstr == "译：More prose with {glue:text}`x`."  # kept for the translator to revise
    assert i18n.problems(LANG, root) == ["book/ch.ipynb, cell 3: fuzzy (the English changed since it was translated)"]
    po = polib.pofile(str(root / "locales" / LANG / "LC_MESSAGES" / "ch.po"))
    revised = po.find("Changed prose with {glue:text}`x`.", by="msgid")
    revised.msgstr, revised.flags = "译：改了 {glue:text}`x`", []
    po.save()
    assert i18n.problems(LANG, root) == []


def test_a_translation_that_breaks_the_markup_fails_the_check(tmp_path):
    root = make_book(tmp_path)
    i18n.update(LANG, root)
    translate_all(root)
    po = polib.pofile(str(root / "locales" / LANG / "LC_MESSAGES" / "ch.po"))
    po.find("more", by="msgctxt").msgstr = "更多文字，数值是 x。"  # the glue role is gone
    po.save()
    assert i18n.problems(LANG, root) == ["book/ch.ipynb, cell 3: role: missing ['{glue:text}x']"]


@pytest.mark.parametrize(
    ("english", "translated", "kind"),
    [
        ("See {doc}`the proof <04_mathematics>`.", "见{doc}`证明 <05_ppo_gae>`。", "role"),
        ("Call `gae(x)`.", "调用 gae(x)。", "code"),
        ("(sec-a)=\n## A", "## 甲", "label"),
        ("```{admonition} Note\nText\n```", "```{note}\n文字\n```", "directive"),
        ("```{figure} a.png\n:name: fig-a\nText\n```", "```{figure} a.png\n:name: fig-b\n文字\n```", "option"),
        ("[TRL](https://github.com/huggingface/trl)", "[TRL](https://github.com/trl)", "link"),
        ("$$\nx = 1\n$$ (eq-a)", "$$\nx = 2\n$$ (eq-a)", "display math"),
        ("with $\\lambda < 1$ only", "仅当 $\\lambda \\le 1$", "inline math"),
    ],
)
def test_markup_differences_name_each_kind_of_broken_markup(english, translated, kind):
    found = i18n.markup_differences(english, translated)
    assert [f.split(":")[0] for f in found] == [kind]


def test_code_and_math_may_run_over_a_line_break_of_their_paragraph():
    english = "The call `f(a,\nb)` gives $x =\ny$ and more."
    assert i18n.markup_differences(english, "调用 `f(a, b)` 得到 $x =\ny$，等等。") == []
    assert [d.split(":")[0] for d in i18n.markup_differences(english, "调用 f(a, b) 得到 $x = z$。")] == [
        "code",
        "inline math",
    ]


def test_markup_that_is_kept_passes_even_when_the_words_are_reordered():
    english = "With $\\gamma$ and {glue:text}`k:.2f` the `gae` call returns; see {ref}`the box <box-a>`."
    translated = "调用 `gae` 时（{glue:text}`k:.2f`，见{ref}`该框 <box-a>`），用 $\\gamma$ 与 $\\gamma$。"
    assert i18n.markup_differences(english, translated) == []


def test_a_draft_keeps_the_english_of_untranslated_entries(tmp_path):
    root = make_book(tmp_path / "en")
    i18n.update(LANG, root)
    po = polib.pofile(str(root / "locales" / LANG / "LC_MESSAGES" / "ch.po"))
    po.find("title", by="msgctxt").msgstr = "# 章"
    po.save()
    out = tmp_path / "zh"
    i18n.write_sources(out, LANG, root, cache_path=None, draft=True)
    chinese = nbformat.read(out / "book" / "ch.ipynb", as_version=4)
    assert [c.source for c in chinese.cells if c.cell_type == "markdown"] == ["# 章", "More prose with {glue:text}`x`."]
    assert (out / "book" / "intro.md").read_text() == INTRO


def test_moving_cells_keeps_every_translation(tmp_path):
    root = make_book(tmp_path)
    i18n.update(LANG, root)
    translate_all(root)
    path = root / "book" / "ch.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells = [nb.cells[3], nb.cells[1], nb.cells[0], nb.cells[2]]
    nbformat.write(nb, path)
    assert i18n.problems(LANG, root) == []
    assert i18n.update(LANG, root)["ch"] == {"kept": 4, "fuzzy": 0, "new": 0, "obsolete": 0}


def test_sources_translate_the_prose_and_leave_the_code_alone(tmp_path):
    root = make_book(tmp_path / "en")
    i18n.update(LANG, root)
    with pytest.raises(ValueError, match="not current"):
        i18n.write_sources(tmp_path / "zh", LANG, root, cache_path=None)
    translate_all(root)
    out = tmp_path / "zh"
    i18n.write_sources(out, LANG, root, cache_path=None)
    english = nbformat.read(root / "book" / "ch.ipynb", as_version=4)
    chinese = nbformat.read(out / "book" / "ch.ipynb", as_version=4)
    assert [c.source for c in chinese.cells if c.cell_type == "code"] == [
        c.source for c in english.cells if c.cell_type == "code"
    ]
    assert chinese.cells[0].source == "译：# Chapter\n\nSome prose."
    assert chinese.cells[2].metadata["tags"] == ["hide-input"]
    assert chinese.cells[2].metadata["mystnb"]["figure"]["caption"] == "译：The loss falls."
    expected = (
        "译：# Intro\n\n译：First paragraph,\non two lines.\n\n```{bibliography}\n```\n\n"
        "译：## Next\n\n译：- a list\n- of two\n"
    )
    assert (out / "book" / "intro.md").read_text() == expected
    config = yaml.safe_load((out / "_config.yml").read_text())
    assert config["title"] == "译：A Book" and config["sphinx"]["config"]["language"] == LANG
    assert config["execute"]["execute_notebooks"] == "off"
    assert yaml.safe_load((out / "_toc.yml").read_text())["parts"][0]["caption"] == "译：Basics"


def test_sources_carry_the_english_executions_outputs_from_the_cache(tmp_path):
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    root = make_book(tmp_path / "en")
    i18n.update(LANG, root)
    translate_all(root)
    executed = nbformat.read(root / "book" / "ch.ipynb", as_version=4)
    executed.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    executed.cells[1].execution_count = 1
    cache = get_cache(tmp_path / "cache")
    cache.cache_notebook_bundle(CacheBundleIn(executed, str(root / "book" / "ch.ipynb")), check_validity=False)
    i18n.write_sources(tmp_path / "zh", LANG, root, cache_path=tmp_path / "cache", edition_cache=tmp_path / "zh-cache")
    chinese = nbformat.read(tmp_path / "zh" / "book" / "ch.ipynb", as_version=4)
    assert chinese.cells[1].outputs[0]["text"] == "1\n"
    # The edition's own cache holds the translated notebook, so its build finds every execution there.
    records = get_cache(tmp_path / "zh-cache").list_cache_records()
    assert [Path(r.uri).name for r in records] == ["ch.ipynb"]
    cached = get_cache(tmp_path / "zh-cache").get_cache_bundle(records[0].pk).nb
    assert next(c.outputs for c in cached.cells if c.cell_type == "code") == chinese.cells[1].outputs


def test_the_glossarys_chinese_terms_are_whole_words_for_the_search(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "glossary.md").write_text(
        "| English | 中文 | in the seeds |\n| --- | --- | --- |\n"
        "| advantage | 优势函数 | 000 §2 |\n"
        "| actor–critic | 演员–评论家（Actor-Critic） | |\n"
        "| action | 动作 / 行动 | |\n"
        "| KL coefficient | KL 惩罚系数 | |\n"
        "| critic | 评论家；价值函数网络 | |\n"
    )
    assert i18n.search_words(tmp_path) == ["优势函数", "演员–评论家", "动作", "行动", "评论家", "价值函数网络"]
    assert "优势函数" in i18n.search_words()  # the term the browser tests search for


def test_the_chinese_search_keeps_its_latin_words_in_a_set_and_indexes_as_before(monkeypatch):
    from sphinx.search import zh

    # "its" and "ads" are Latin words whose English stems ("it", "ad") are too short: the search keeps
    # them whole only if it finds them among the Latin words it has split.
    text = "优势函数 its GAE 估计 uses ads 和 PPO 的 returns"

    def index_terms() -> list[str]:
        search = zh.SearchChinese({})
        return [search.stem(word) for word in search.split(text)]

    monkeypatch.setattr(zh.SearchChinese, "latin_terms", [])
    as_sphinx_7_does = index_terms()
    assert "its" in as_sphinx_7_does and "ads" in as_sphinx_7_does
    monkeypatch.setattr(zh.SearchChinese, "latin_terms", [])
    i18n._chinese_search_in_linear_time()
    assert isinstance(zh.SearchChinese.latin_terms, set)
    assert index_terms() == as_sphinx_7_does
