"""The word-pairs card of the example site (the real default model) in a real browser: one
caveat, the same on every head page; words, not pieces; each pair's share of its word."""

from __future__ import annotations

from browser import require_chromium

from atlas.result import load

require_chromium()


def test_pairs_card_shows_words_shares_and_one_caveat(browser, default_site):
    atlas = load(default_site)
    caveats = set()
    for head in (atlas.heads[0], atlas.heads[len(atlas.heads) // 2], atlas.heads[-1]):
        page, rep = browser.open(default_site / "heads" / f"{head.slug}.html")
        card = page.locator(".card", has=page.locator("table.pairs"))
        assert card.locator("h2").inner_text() == "Most frequent word pairs"
        caveat = card.locator(".pairs-caveat")
        assert caveat.count() == 1
        caveats.add(caveat.inner_text())
        header = card.locator("thead th").all_inner_texts()
        assert header[-3:] == ["count", "of", "share"]
        rows = [r.locator("td").all_inner_texts() for r in card.locator("tbody tr").all()]
        assert len(rows) == 10
        for source, _, target, count, of, share in rows:
            for word in (source, target):
                assert word == word.lower() and not word.startswith("##"), word
            assert 0 < int(count) <= int(of)
            assert share == f"{int(count) / int(of):.0%}"
        counts = [int(r[3]) for r in rows]
        assert counts == sorted(counts, reverse=True)
        assert rep.clean, rep
        page.close()
    assert caveats == {"Counts are exact, over every sentence."}
