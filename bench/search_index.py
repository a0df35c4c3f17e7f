"""Size of the search index (assets/search-index.js) of a built site, and as the corpus grows.

    .venv/bin/python bench/search_index.py SITE_OR_ATLAS_JSON [N ...]

Prints the index's size for the site's own sentences, then for N sentences each (default
10000): the site's sentences cycled (taken again from the first, in the same order) up to N,
the index made by the same function the site uses (``site.search_index``). The index stores each
sentence's text once plus about 14 bytes (its key, the second text or null, whether it has a
page), so it grows with the corpus's text; the overhead column says how much beyond the text.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from atlas import contract  # noqa: E402
from atlas.result import Atlas, load  # noqa: E402
from atlas.site import search_index  # noqa: E402


def cycled(atlas: Atlas, count: int) -> Atlas:
    """The atlas with its sentences taken again from the first until there are ``count``."""
    sentences = [
        dataclasses.replace(atlas.sentences[i % len(atlas.sentences)], index=i)
        for i in range(count)
    ]
    return dataclasses.replace(atlas, sentences=sentences)


def measure(atlas: Atlas) -> tuple[int, int, int]:
    """Bytes of the index, bytes of the sentences' text in it (as JSON strings), sentences."""
    size = len(contract.search_script(search_index(atlas)).encode("utf-8"))
    text = sum(
        len(contract.script_json(s.text).encode()) + len(contract.script_json(s.text_b).encode())
        for s in atlas.sentences
    )
    return size, text, len(atlas.sentences)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("site", type=Path, help="a site folder or its atlas.json")
    parser.add_argument("sizes", type=int, nargs="*", default=[10000])
    args = parser.parse_args()
    atlas = load(args.site)
    print("| sentences | index | text in it | overhead per sentence |")
    print("| ---: | ---: | ---: | ---: |")
    for which in [atlas, *(cycled(atlas, n) for n in args.sizes)]:
        size, text, count = measure(which)
        print(f"| {count:,} | {size / 1000:,.1f} kB | {text / 1000:,.1f} kB | "
              f"{(size - text) / count:.1f} B |")  # fmt: skip
    print(json.dumps({"pages": sum(s.has_view for s in atlas.sentences)}))


if __name__ == "__main__":
    main()
