"""Hand-made sites for browser tests: the real assets and page contract, a hand-made data
script, and a page written by the test (no model, no build).

    folder = tmp_path
    handmade.copy_assets(folder)
    handmade.write_config(folder, layers, heads)
    handmade.write_data(folder / "data" / "0001.js", payload)
    (folder / "sentences" / "0001.html").write_text(handmade.page(body, scripts, depth=1))
"""

from __future__ import annotations

import pathlib
import shutil

from atlas import contract

ROOT = pathlib.Path(__file__).resolve().parent.parent
ASSETS = ROOT / "templates" / "assets"


def copy_assets(folder: pathlib.Path, names: tuple[str, ...] | None = None) -> None:
    """The site's assets (all of templates/assets, or the files named) into folder/assets."""
    (folder / "assets").mkdir(parents=True, exist_ok=True)
    for source in ASSETS.iterdir():
        if source.is_file() and (names is None or source.name in names):
            shutil.copy(source, folder / "assets" / source.name)


def write_config(folder: pathlib.Path, layers: int, heads: int, labels: dict | None = None) -> None:
    """The page contract, as a built site has it (assets/config.js)."""
    path = folder / contract.CONFIG_SCRIPT
    path.parent.mkdir(parents=True, exist_ok=True)
    config = contract.page_config(layers, heads, labels or {})
    path.write_text(contract.config_script(config), encoding="utf-8")


def write_data(path: pathlib.Path, payload: dict) -> None:
    """A data script setting window.ATLAS_DATA[payload["key"]] = payload."""
    data = f"window.{contract.DATA_GLOBAL}"
    key = payload["key"]
    text = contract.script_json({"format": contract.DATA_FORMAT, **payload})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{data} = {data} || {{}};\n{data}[{key!r}] = {text};\n", encoding="utf-8")


def page(
    body: str, scripts: list[str], depth: int = 0, css: tuple[str, ...] = ("atlas.css",)
) -> str:
    """An HTML page: the stylesheets and scripts (paths from the site's root, config.js first)
    for a page depth folders below the root."""
    root = "../" * depth
    links = "".join(f'<link rel="stylesheet" href="{root}assets/{name}">' for name in css)
    sources = [contract.CONFIG_SCRIPT, *scripts]
    tags = "\n".join(f'<script src="{root}{src}"></script>' for src in sources)
    head = f'<meta charset="utf-8"><title>test</title>{links}'
    html = f'<!doctype html>\n<html lang="en"><head>{head}</head>\n'
    return f"{html}<body><main>{body}</main>\n{tags}\n</body></html>\n"
