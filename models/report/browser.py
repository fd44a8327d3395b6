"""Headless Chromium for the model card: a screenshot of the HTML card (the report stage's
reports/figures/card/model_card.png, so a reviewer sees what a manager sees) and a probe of what
the browser saw (the card's browser test). Chromium runs with nothing that phones home and every
host name unresolvable; without a Chromium binary the screenshot is skipped with a hint.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

# the card's messages share one logger, whichever module writes them
log = logging.getLogger("churnlight.report")

CHROMIUM_HINT = (
    "install Chromium (Debian/Ubuntu, as root: apt-get install chromium fonts-noto-cjk; "
    "`bash scripts/run.sh` does it when run as root) or set $CHROMIUM to a Chrome/Chromium "
    "binary; report.screenshot: false turns the screenshot off"
)
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
PROBE_ID = "churnlight-probe"
# the card's own policy, plus inline scripts for the probe: anything fetched is a violation
PROBE_CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
)
PROBE_SCRIPT = """<script>
(function () {
  var violations = [];
  document.addEventListener('securitypolicyviolation', function (e) {
    violations.push(e.violatedDirective + ' ' + e.blockedURI);
  });
  function report() {
    var images = Array.prototype.map.call(document.images, function (i) {
      return {src: i.getAttribute('src').slice(0, 40), complete: i.complete,
              width: i.naturalWidth, height: i.naturalHeight};
    });
    var resources = performance.getEntriesByType('resource').map(function (r) { return r.name; });
    var h1 = document.querySelector('h1');
    var out = {title: document.title, h1: h1 ? h1.textContent : '', images: images,
               violations: violations, resources: resources,
               height: document.documentElement.scrollHeight,
               text_length: document.body.innerText.length};
    var pre = document.getElementById('%(id)s') || document.createElement('pre');
    pre.id = '%(id)s';
    pre.style.display = 'none';
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  }
  window.addEventListener('load', function () { report(); setTimeout(report, 300); });
})();
</script>""" % {"id": PROBE_ID}  # noqa: UP031 (braces in JavaScript)


def find_chromium() -> str | None:
    """A Chromium/Chrome binary: $CHROMIUM or $CHROME_BIN if set, else the first on PATH."""
    for var in ("CHROMIUM", "CHROME_BIN"):
        if os.environ.get(var) and shutil.which(os.environ[var]):
            return shutil.which(os.environ[var])
    return next((shutil.which(n) for n in CHROMIUM_NAMES if shutil.which(n)), None)


def _chromium(binary: str, args: list[str], timeout: int = 120) -> subprocess.CompletedProcess:
    """Run headless Chromium with nothing that phones home and every host name unresolvable."""
    with tempfile.TemporaryDirectory(prefix="churnlight-chromium-") as profile:
        cmd = [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-default-apps",
            "--no-first-run",
            "--no-default-browser-check",
            "--hide-scrollbars",
            "--mute-audio",
            "--force-device-scale-factor=1",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--user-data-dir={profile}",
            *args,
        ]
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=profile
        )


def probe_page(html_path: Path, binary: str | None = None) -> dict:
    """Open a copy of the page with a probe script in headless Chromium and return what it saw:
    title, h1, every image's natural size, CSP violations (any attempted request), resource
    requests, page height and text length. The copy swaps the page's Content-Security-Policy for
    the same policy plus inline scripts, so any request the page tries is caught as a violation.
    """
    binary = binary or find_chromium()
    if binary is None:
        raise FileNotFoundError("no Chromium found (install chromium, or set $CHROMIUM)")
    page = Path(html_path).read_text(encoding="utf-8")
    page = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>\n?', "", page)
    probe = f'<meta http-equiv="Content-Security-Policy" content="{PROBE_CSP}">\n{PROBE_SCRIPT}\n'
    page = page.replace("<head>\n", "<head>\n" + probe, 1)
    with tempfile.TemporaryDirectory(prefix="churnlight-probe-") as tmp:
        copy = Path(tmp) / "probe.html"
        copy.write_text(page, encoding="utf-8")
        proc = _chromium(
            binary, ["--virtual-time-budget=5000", "--dump-dom", copy.resolve().as_uri()]
        )
    m = re.search(rf'<pre id="{PROBE_ID}"[^>]*>(.*?)</pre>', proc.stdout, re.S)
    if m is None:
        raise RuntimeError(
            f"the probe did not report (exit {proc.returncode}): {proc.stderr[-2000:]}"
        )
    return json.loads(html.unescape(m.group(1)))


def screenshot(
    html_path: Path, png_path: Path, width: int = 1200, height: int | None = None
) -> Path:
    """A PNG of the page at `png_path` (the whole page when `height` is None: measured by a probe
    first). The file appears whole or not at all: Chromium writes next to it, then it is moved."""
    binary = find_chromium()
    if binary is None:
        raise FileNotFoundError("no Chromium found (install chromium, or set $CHROMIUM)")
    if height is None:
        height = min(int(probe_page(html_path, binary)["height"]) + 16, 20000)
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".screenshot-", dir=png_path.parent) as tmp:
        shot = Path(tmp) / "shot.png"  # Chromium picks the format by the extension
        proc = _chromium(
            binary,
            [
                f"--window-size={width},{height}",
                "--run-all-compositor-stages-before-draw",
                "--virtual-time-budget=5000",
                f"--screenshot={shot.resolve()}",
                Path(html_path).resolve().as_uri(),
            ],
        )
        if not shot.is_file() or shot.stat().st_size == 0:
            raise RuntimeError(f"no screenshot (exit {proc.returncode}): {proc.stderr[-2000:]}")
        shot.replace(png_path)
    return png_path


def write_screenshot(html_path: Path, png_path: Path, enabled: bool) -> Path | None:
    """A screenshot of the card at `png_path`, or None: when it is off, when no Chromium is
    installed (a warning says how to get it) or when Chromium fails (a warning). A missing
    screenshot must not fail the run."""
    if not enabled:
        log.info("model card screenshot off (report.screenshot)")
        return None
    if find_chromium() is None:
        log.warning(
            "model card screenshot skipped: no Chromium found; to get it, %s", CHROMIUM_HINT
        )
        return None
    try:
        return screenshot(html_path, png_path)
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        log.warning("model card screenshot failed: %s", exc)
        return None
