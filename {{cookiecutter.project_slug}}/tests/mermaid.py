"""Mermaid blocks drawn by Mermaid itself (the library GitHub renders them with), in headless Chromium.

tools/mermaid holds the pinned npm package (`make mermaid-tools`); a page that loads its browser
bundle renders each block with `mermaid.render` and records the SVG or Mermaid's error message.
"""

from __future__ import annotations

import fcntl
import html
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from ml.config import PROJECT_ROOT

TOOLS = PROJECT_ROOT / "tools" / "mermaid"
BLOCK = re.compile(r"```mermaid\n(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class Drawn:
    source: str
    svg: str = ""
    error: str = ""

    def count(self, css_class: str) -> int:
        return len(re.findall(rf'class="[^"]*\b{re.escape(css_class)}\b', self.svg))


def available() -> str | None:
    """Chromium's path; None where there is none, which MLOPS_REQUIRE_BROWSER (the template's CI) refuses."""
    found = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    if found is None and os.environ.get("MLOPS_REQUIRE_BROWSER"):
        pytest.fail(
            "MLOPS_REQUIRE_BROWSER is set and there is no Chromium on PATH (Debian: `apt-get install chromium`)"
        )
    return found


def browser() -> str:
    found = available()
    if found is None:
        pytest.skip("no Chromium on PATH (Debian: `apt-get install chromium`); the template's CI installs it")
    return found


def blocks(markdown: str) -> list[str]:
    return BLOCK.findall(markdown)


def _install() -> None:
    # `npm ci` deletes node_modules first: two test workers installing at once would read half a tree.
    TOOLS.joinpath("node_modules").mkdir(exist_ok=True)
    with (TOOLS / "node_modules" / ".install.lock").open("a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        done = subprocess.run(["make", "--no-print-directory", "mermaid-tools"], cwd=PROJECT_ROOT,
                              capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def _script_text(value: object) -> str:
    # Script text is not HTML-decoded: only a closing tag inside it needs escaping.
    return json.dumps(value).replace("</", "<\\/")


def render(sources: list[str], scratch: Path) -> list[Drawn]:
    chromium = browser()
    _install()
    bundle = (TOOLS / "node_modules" / "mermaid" / "dist" / "mermaid.min.js").resolve()
    page = scratch / "mermaid.html"
    page.write_text(
        "<!doctype html><html><body><div id=out></div>"
        f"<script src='{bundle.as_uri()}'></script>"
        f"<script id=sources type='application/json'>{_script_text(sources)}</script>"
        "<script>(async () => {"
        "  mermaid.initialize({startOnLoad: false});"
        "  const sources = JSON.parse(document.getElementById('sources').textContent);"
        "  const results = [];"
        "  for (const [i, source] of sources.entries()) {"
        "    try { results.push({svg: (await mermaid.render('chart' + i, source)).svg}); }"
        "    catch (e) { results.push({error: String(e && e.message || e)}); }"
        "  }"
        "  const done = document.createElement('pre'); done.id = 'results';"
        "  done.textContent = JSON.stringify(results); document.body.appendChild(done);"
        "})();</script></body></html>"
    )
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
         "--virtual-time-budget=20000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=180, check=False,
    ).stdout  # fmt: skip
    found = re.search(r'<pre id="results">(.*?)</pre>', dom, re.DOTALL)
    assert found, f"Mermaid did not finish: {dom[-2000:]}"
    results = json.loads(html.unescape(found.group(1)))
    return [Drawn(source, r.get("svg", ""), r.get("error", "")) for source, r in zip(sources, results, strict=True)]
