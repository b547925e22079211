"""Time for the live pentagon widget to reach a regular pentagon, over several seeds.

Opens the built toy-models chapter in headless Chromium (Debian's, never a downloaded one),
served from 127.0.0.1, and for each seed restarts the widget at sparsity 0.9 with uniform
importance, then measures the wall-clock time and the number of training steps until the five
arrows first form a regular pentagon: sorted angular gaps 72° ± 6° and the largest norm at most
1.15 × the smallest (the criterion of tests/test_widget.py). The geometry is checked inside the
page on every animation frame, so the times are not rounded up to a polling interval.

Build the book first, then:

    python benchmarks/widget_time_to_pentagon.py --html _build/html --seeds 20
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

# The browser helpers the widget's tests use (Debian's Chromium, a local server).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from browser import CHROMIUM, launch, serve  # noqa: E402

# Runs in the page: restart the widget with `seed`, resolve when the pentagon first appears.
MEASURE = """
([seed, limitMs]) => new Promise(done => {
  const w = document.querySelector('.pentagon-widget').pentagon;
  function pentagon(W) {
    const n = W[0].length, norms = [], angles = [];
    for (let f = 0; f < n; f++) {
      norms.push(Math.hypot(W[0][f], W[1][f]));
      angles.push((Math.atan2(W[1][f], W[0][f]) * 180 / Math.PI + 360) % 360);
    }
    const kept = angles.filter((_, f) => norms[f] > 0.5).sort((a, b) => a - b);
    if (kept.length !== 5) return false;
    const gaps = kept.map((a, i) => (i + 1 < kept.length ? kept[i + 1] : kept[0] + 360) - a);
    return gaps.every(g => Math.abs(g - 72) <= 6) &&
      Math.max(...norms) <= 1.15 * Math.min(...norms);
  }
  w.restart({sparsity: 0.9, decay: 1, seed: seed});
  if (w.step !== 0) throw new Error('restart did not reset the step counter');
  const t0 = performance.now();
  requestAnimationFrame(function check(now) {
    const t = performance.now() - t0;
    if (pentagon(w.W)) done({seed: seed, seconds: t / 1000, steps: w.step});
    else if (t > limitMs || w.step >= w.recipe.maxSteps) done({seed: seed, seconds: null, steps: w.step});
    else requestAnimationFrame(check);
  });
})
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--html", type=Path, default=Path("_build/html"), help="the built book's html folder")
    ap.add_argument("--seeds", type=int, default=20, help="seeds 1..N")
    ap.add_argument("--limit", type=float, default=30.0, help="give up on a seed after this many seconds")
    ap.add_argument("--chromium", default=CHROMIUM)
    ap.add_argument("--json", type=Path, help="also write the per-seed results here")
    args = ap.parse_args()
    if not (args.html / "toy_models.html").exists():
        raise SystemExit(f"--html {args.html}: no toy_models.html there; build the book first")

    results = []
    with serve(args.html) as base:
        with sync_playwright() as pw:
            browser = launch(pw, args.chromium)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            # No network: anything not on the local server is answered with nothing (the book serves its own
            # MathJax, so nothing should ask).
            page.route(
                "**/*",
                lambda r: (
                    r.continue_()
                    if r.request.url.startswith("http://127.0.0.1")
                    else r.fulfill(status=200, body="")
                ),
            )
            page.goto(f"{base}toy_models.html")
            page.wait_for_function("document.querySelector('.pentagon-widget').pentagon !== undefined")
            page.locator(".pentagon-widget").scroll_into_view_if_needed()  # it trains only on screen
            page.wait_for_function("document.querySelector('.pentagon-widget').pentagon.running")
            for seed in range(1, args.seeds + 1):
                r = page.evaluate(MEASURE, [seed, args.limit * 1000])
                results.append(r)
                t = "no pentagon" if r["seconds"] is None else f"{r['seconds']:.2f} s"
                print(f"seed {seed:3d}: {t:>12}  ({r['steps']} steps)", flush=True)
            recipe = page.evaluate("document.querySelector('.pentagon-widget').pentagon.recipe")
            version = browser.version
            browser.close()

    done = [r for r in results if r["seconds"] is not None]
    print(f"\nChromium {version}, {platform.machine()}, recipe {recipe}")
    print(f"reached a pentagon: {len(done)} of {len(results)} seeds")
    if done:
        secs = sorted(r["seconds"] for r in done)
        steps = sorted(r["steps"] for r in done)
        print(
            f"time to pentagon: median {statistics.median(secs):.2f} s "
            f"(min {secs[0]:.2f}, max {secs[-1]:.2f}); "
            f"steps: median {statistics.median(steps):.0f} (min {steps[0]}, max {steps[-1]})"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"chromium": version, "recipe": recipe, "results": results}, indent=1)
        )


if __name__ == "__main__":
    main()
