"""The README's screenshots: each exists, is small, and docs/screenshots.py makes it."""

import importlib.util
import re
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _shots() -> dict:
    spec = importlib.util.spec_from_file_location("screenshots", ROOT / "docs" / "screenshots.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SHOTS


def _readme_images() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"\(docs/images/([\w-]+)\.png\)", text)


def test_every_readme_image_is_made_by_the_script_and_exists():
    shown = _readme_images()
    assert shown, "README shows no screenshots"
    assert sorted(set(shown)) == sorted(_shots()), (
        "README images and docs/screenshots.py's shots differ"
    )
    for name in shown:
        png = ROOT / "docs" / "images" / f"{name}.png"
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", name
        width, _height = struct.unpack(">II", data[16:24])
        assert width <= 1400, f"{name}.png is {width} px wide"
        assert len(data) < 400_000, f"{name}.png is {len(data)} bytes"
