"""Screenshots of the result pages for the README: a video's page, the images' page and the index, taken in
headless Chromium from an output folder of ``affectlab analyze ... --report``.

    affectlab analyze examples/media --out demo_out --report
    python tools/report_screenshots.py demo_out --video WolfgangLanger_Pexels --at 7.5 --out docs/figures
"""
from __future__ import annotations

import argparse
import io
import shutil
from pathlib import Path

from PIL import Image

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WIDTH = 1280  # CSS pixels of the browser window
SHOWN = 1100  # pixels wide in the README


def shoot(page, path: Path, height: int | None = None) -> Path:
    """A screenshot of the whole page (or its top ``height`` CSS pixels), scaled to SHOWN wide, as a PNG."""
    clip = None if height is None else {"x": 0, "y": 0, "width": WIDTH, "height": height}
    image = Image.open(io.BytesIO(page.screenshot(full_page=height is None, clip=clip))).convert("RGB")
    image = image.resize((SHOWN, round(image.height * SHOWN / image.width)), Image.LANCZOS)
    image.save(path, optimize=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="an output folder with the pages (analyze --report)")
    parser.add_argument("--video", required=True, help="the video page's name (its table's stem)")
    parser.add_argument("--at", type=float, default=5.0, help="the moment shown, in seconds")
    parser.add_argument("--out", type=Path, default=Path("docs/figures"))
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=FLAGS)
        page = browser.new_page(viewport={"width": WIDTH, "height": 900})
        for name, target, height in ((args.video, "report-video.png", None), ("images", "report-images.png", 1000),
                                     ("index", "report-index.png", 330)):
            page.goto((args.folder / f"{name}.html").resolve().as_uri())
            page.wait_for_selector("body[data-ready='1']")
            if name == args.video:
                page.evaluate("(t) => new Promise((done) => { const v = document.getElementById('video'); "
                              "v.addEventListener('seeked', done, {once: true}); window.affectlab.seek(t); })", args.at)
                page.wait_for_timeout(300)
            print(shoot(page, args.out / target, height))
        browser.close()


if __name__ == "__main__":
    main()
