import pytest

from gaebook.tables import Table


def test_html_has_a_header_row_and_escapes_cells():
    table = Table(["token", "A"], [["<eos>", "+0.125"], ["(", ""]], caption="one response")
    out = table._repr_html_()
    assert out.startswith("<table><caption>one response</caption>")
    assert '<th scope="col">token</th><th scope="col">A</th>' in out
    assert "<td>&lt;eos&gt;</td><td>+0.125</td>" in out
    assert out.count("<tr>") == 3


def test_plain_text_aligns_the_columns():
    lines = repr(Table(["a", "long name"], [[1, 2], [300, 4]])).splitlines()
    assert lines == ["a   | long name", "----+----------", "1   | 2", "300 | 4"]


@pytest.mark.parametrize(
    ("header", "rows", "error", "match"),
    [
        ([], [], ValueError, "header"),
        ("ab", [], ValueError, "header"),
        (["a"], "x", TypeError, "rows"),
        (["a", "b"], [[1]], ValueError, r"rows\[0\]"),
        (["a"], ["x"], ValueError, r"rows\[0\]"),
    ],
)
def test_bad_input_names_the_argument(header, rows, error, match):
    with pytest.raises(error, match=match):
        Table(header, rows)


def test_caption_must_be_text():
    with pytest.raises(TypeError, match="caption"):
        Table(["a"], [[1]], caption=3)  # type: ignore[arg-type]
