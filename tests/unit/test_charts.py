"""The console's SVG bar charts: scales, stacking, limit line, empty data, escaping, legend."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from defusedxml.ElementTree import fromstring

from syncd.web.charts import PLOT_HEIGHT, TOP, Series, bar_chart, nice_ceiling, scale

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup: str) -> ET.Element:
    root: ET.Element = fromstring(markup)
    return root


def bars(root: ET.Element) -> list[ET.Element]:
    """The data bars (legend keys are rects too, but have no tooltip)."""
    return [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]


@pytest.mark.parametrize(
    ("value", "ceiling"),
    [(0, 1), (1, 1), (1.5, 2), (3, 5), (7, 10), (11, 20), (120, 200), (208.3, 500), (5000, 5000)],
)
def test_the_axis_top_is_a_round_number_at_or_above_the_value(value: float, ceiling: int) -> None:
    """The y axis ends at the smallest 1, 2 or 5 times a power of ten that fits."""
    assert nice_ceiling(value) == ceiling


def test_the_scale_fits_the_limit_line_too() -> None:
    """A budget line above every bar still fits on the chart."""
    fitted = scale([3, 4], limit=208)
    assert fitted.top == 500
    assert fitted.pixels(250) == pytest.approx(PLOT_HEIGHT / 2)


def test_bars_are_proportional_to_their_values() -> None:
    """A value twice another is drawn twice as tall, the tallest reaching the axis top."""
    root = parse(
        bar_chart(
            key="k", title="t", labels=["a", "b", "c"], series=[Series(name="n", values=[1, 0, 2])]
        )
    )
    drawn = bars(root)
    assert len(drawn) == 2  # no bar for the zero
    heights = [float(r.attrib["height"]) for r in drawn]
    assert heights == [pytest.approx(PLOT_HEIGHT / 2), pytest.approx(PLOT_HEIGHT)]
    assert float(drawn[1].attrib["y"]) == pytest.approx(TOP)


def test_series_stack_on_each_other() -> None:
    """The second series' bar starts where the first one's ends."""
    root = parse(
        bar_chart(
            key="k",
            title="t",
            labels=["only"],
            series=[Series(name="out", values=[3]), Series(name="in", values=[2])],
        )
    )
    low, high = bars(root)
    assert float(high.attrib["y"]) + float(high.attrib["height"]) == pytest.approx(
        float(low.attrib["y"])
    )
    assert [low.attrib["class"], high.attrib["class"]] == ["s0", "s1"]
    assert low.findtext(f"{SVG}title") == "only · out: 3"


def test_the_limit_line_is_drawn_at_its_value() -> None:
    """A limit of half the axis top is drawn halfway up, named in the legend and description."""
    root = parse(
        bar_chart(
            key="k",
            title="t",
            labels=["a"],
            series=[Series(name="calls", values=[8])],
            limit=5,
            limit_name="budget",
        )
    )
    line = next(
        e
        for e in root.iter(f"{SVG}line")
        if e.get("class") == "limit" and e.find(f"{SVG}title") is not None
    )
    assert float(line.attrib["y1"]) == pytest.approx(TOP + PLOT_HEIGHT / 2)
    assert root.findtext(f"{SVG}desc") == "calls: 8; budget: 5"


def test_empty_data_says_so_and_draws_no_bars() -> None:
    """All zeros (or no slots at all) draw the empty message instead of bars."""
    for labels, values in ((["a", "b"], [0, 0]), ([], [])):
        root = parse(
            bar_chart(
                key="k",
                title="t",
                labels=labels,
                series=[Series(name="n", values=values)],
                empty="nothing today",
            )
        )
        assert bars(root) == []
        texts = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "empty"]
        assert texts == ["nothing today"]


def test_text_is_escaped() -> None:
    """Labels, names and titles with markup stay text: the SVG still parses, nothing injected."""
    markup = bar_chart(
        key="k",
        title='<script>alert("t")</script>',
        labels=["<b>x</b>"],
        series=[Series(name="A & B <i>", values=[1])],
        limit=2,
        limit_name='"quoted" & <em>',
    )
    assert "<script>" not in markup and "<b>" not in markup and "<em>" not in markup
    root = parse(markup)
    assert root.findtext(f"{SVG}title") == '<script>alert("t")</script>'
    assert bars(root)[0].findtext(f"{SVG}title") == "<b>x</b> · A & B <i>: 1"


def test_accessible_name_and_unique_ids() -> None:
    """The chart is an image named by its title, described by the totals, ids from its key."""
    root = parse(bar_chart(key="Chart Jobs!", title="t", labels=["a"], series=[]))
    assert root.attrib["role"] == "img"
    assert root.attrib["id"] == "chart-jobs"
    assert root.attrib["aria-labelledby"] == "chart-jobs-t"
    assert root.attrib["aria-describedby"] == "chart-jobs-d"


def test_a_long_legend_wraps_onto_more_rows() -> None:
    """Many series wrap the legend and make the chart taller, rather than run off its edge."""
    one = parse(bar_chart(key="k", title="t", labels=["a"], series=[Series(name="x", values=[1])]))
    many = parse(
        bar_chart(
            key="k",
            title="t",
            labels=["a"],
            series=[Series(name=f"finding kind number {n}", values=[1]) for n in range(6)],
        )
    )
    assert float(many.attrib["viewBox"].split()[3]) > float(one.attrib["viewBox"].split()[3])
    legend_x = [float(t.attrib["x"]) for t in many.iter(f"{SVG}text") if t.get("class") == "legend"]
    assert max(legend_x) < 360


def test_a_series_of_the_wrong_length_is_refused() -> None:
    """One value per label, or a clear error."""
    with pytest.raises(ValueError, match="one value per label"):
        bar_chart(key="k", title="t", labels=["a", "b"], series=[Series(name="n", values=[1])])
