"""The dashboard of `gm serve` in a real browser: Debian's Chromium driven by Playwright.

Usage: dashboard_browser.py BASE_URL SHOTS_DIR PROFILE_DIR

Loads every page at desktop and phone width (a screenshot of each in SHOTS_DIR) and fails on any console error
or uncaught exception; sends a playground prompt to two models and sees each answer stream in as text; starts
a 2-model x 2-task evaluation, waits for the live progress to say it is done, opens the run and finds the best
model the run's JSON export gives; runs it again and compares the two runs; makes an administrator's key and
an ordinary one on the Quotas page, and signed in with the ordinary one sees no administration and none of the
runs. Exits non-zero on the first failure, with what it saw.
"""

import json
import os
import sys

from playwright.sync_api import expect, sync_playwright

BASE, SHOTS, PROFILE = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
MODELS = ["openai/gpt-4.1", "openai/gpt-4.1-mini"]
TASKS = ["question_answering", "reasoning"]
PAGES = [
    ("home", "/"),
    ("models", "/ui/models"),
    ("playground", "/ui/playground"),
    ("evaluate", "/ui/evaluate"),
    ("runs", "/ui/runs"),
    ("quotas", "/ui/quotas"),
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

problems = []


def shoot(page, name):
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.screenshot(path=os.path.join(SHOTS, f"{name}-{label}.png"), full_page=True)
        if label == "phone":
            # Readable at phone width: the page itself never scrolls sideways (wide tables scroll in their box).
            overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            if overflow > 1:
                problems.append(f"{name}: the page is {overflow}px wider than a phone's screen")
    page.set_viewport_size(DESKTOP)


def evaluate(page):
    """Starts the 2 x 2 evaluation from the form; returns the run id once the live progress says done."""
    page.goto(f"{BASE}/ui/evaluate")
    for m in MODELS:
        page.locator(f"input[name=model][value='{m}']").check()
    for t in TASKS:
        page.locator(f"input[name=task][value='{t}']").check()
    page.get_by_label("Items per task").fill("2")
    page.get_by_role("button", name="Start").click()
    page.wait_for_url("**/ui/jobs/*")
    expect(page.locator("#job-status")).to_contain_text("done: 8 of 8 test cases", timeout=90_000)
    rows = page.locator("#job-cells tbody tr")
    expect(rows).to_have_count(4)
    link = page.locator("#run-link")
    expect(link).to_be_visible()
    return int(link.get_attribute("href").rsplit("/", 1)[1])


def main():
    os.makedirs(SHOTS, exist_ok=True)
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            PROFILE,
            executable_path="/usr/bin/chromium",
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
            viewport=DESKTOP,
        )
        page = context.new_page()
        page.on("console", lambda m: m.type == "error" and problems.append(f"console error on {page.url}: {m.text}"))
        page.on("pageerror", lambda e: problems.append(f"uncaught exception on {page.url}: {e}"))

        # Every page loads, and the keyboard reaches the navigation first.
        for name, path in PAGES:
            resp = page.goto(f"{BASE}{path}")
            if resp.status != 200:
                problems.append(f"{path} answered {resp.status}")
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.tagName") != "A":
                problems.append(f"{path}: Tab does not reach a link first")
            shoot(page, name)

        # The playground: one prompt, two models, each answer streaming into its own column, as text.
        page.goto(f"{BASE}/ui/playground")
        selects = page.locator("select[name=model]")
        selects.nth(0).select_option(MODELS[0])
        selects.nth(1).select_option(MODELS[1])
        page.get_by_label("Prompt", exact=True).fill(
            "Summarize: <script>window.injected = 1</script> was found in a page. It ran once. Nobody saw it."
        )
        page.evaluate(
            """() => {
                window.appends = 0;
                new MutationObserver((ms) => { for (const m of ms) window.appends += m.addedNodes.length; })
                    .observe(document.getElementById('answers'), { childList: true, subtree: true });
            }"""
        )
        page.get_by_role("button", name="Send").click()
        done = page.locator(".column[data-done=true]")
        expect(done).to_have_count(2, timeout=30_000)
        texts = page.locator(".column .answer").all_inner_texts()
        if not all(t.strip() for t in texts):
            problems.append(f"an answer stayed empty: {texts}")
        if not any("<script>" in t for t in texts):
            problems.append(f"the answer's markup was not shown as text: {texts}")
        if page.evaluate("window.injected") is not None or page.locator("#answers script").count():
            problems.append("model text was run as a script")
        # Each answer arrived in pieces (one text node per streamed chunk), not at once.
        if page.evaluate("window.appends") < 2 * 3 + 6:
            problems.append(f"the answers did not stream in: {page.evaluate('window.appends')} additions")
        for dd in page.locator(".column .figures dd").all_inner_texts():
            if dd.strip() in ("", "…"):
                problems.append("a figure of an answer stayed empty")
        shoot(page, "playground-answered")

        # An evaluation with live progress, then its run, whose best model is the JSON export's.
        first = evaluate(page)
        shoot(page, "evaluation-done")
        exported = page.request.get(f"{BASE}/ui/runs/{first}/export/json")
        best = json.loads(exported.text())["summary"]["best_model"]
        page.locator("#run-link").click()
        page.wait_for_url(f"**/ui/runs/{first}")
        shown = page.locator("#best-model").get_attribute("data-model")
        if shown != best:
            problems.append(f"the run page's best model {shown!r} is not the JSON's {best!r}")
        expect(page.get_by_role("img", name="quality heat map")).to_be_visible()
        shoot(page, "run")

        # A second run, compared with the first.
        second = evaluate(page)
        page.goto(f"{BASE}/ui/runs")
        page.get_by_label(f"run {first} as the baseline").check()
        page.get_by_label(f"run {second} as the candidate").check()
        page.get_by_role("button", name="Compare").click()
        page.wait_for_url("**/ui/compare?*")
        expect(page.locator("#verdict")).to_contain_text("regressed significantly")
        expect(page.get_by_role("heading", name="Against the baseline")).to_be_visible()
        shoot(page, "compare")

        # The quotas page refreshes itself without errors.
        page.goto(f"{BASE}/ui/quotas")
        with page.expect_response(lambda r: r.url == f"{BASE}/ui/quotas", timeout=20_000):
            pass
        shoot(page, "quotas-refreshed")

        # Keys from the browser: the local administrator makes the first key, an administrator's, and stays
        # signed in with it; then an ordinary key, which administers nothing and sees none of the runs.
        page.get_by_label("Name", exact=True).fill("root")
        page.get_by_label("administers this dashboard").check()
        page.get_by_role("button", name="Create").click()
        expect(page.locator(".who")).to_contain_text("signed in as root (administrator)")
        page.goto(f"{BASE}/ui/quotas")
        page.get_by_label("Name", exact=True).fill("alice")
        page.get_by_role("button", name="Create").click()
        holder = page.locator("#new-key").input_value()
        context.clear_cookies()
        page.goto(f"{BASE}/ui/login")
        page.get_by_label("Client key").fill(holder)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{BASE}/")
        expect(page.locator(".who")).to_contain_text("signed in as alice")
        page.goto(f"{BASE}/ui/runs")
        expect(page.locator("main")).to_contain_text("No run matches.")
        shoot(page, "runs-key-holder")
        page.goto(f"{BASE}/ui/quotas")
        if page.get_by_role("button", name="Clear the cache").count() or page.locator("#keys").count():
            problems.append("a key holder is offered the administrator's forms")
        shoot(page, "quotas-key-holder")
        refused = page.request.post(f"{BASE}/ui/cache/clear", headers={"origin": BASE})
        if refused.status != 403 or "administrator" not in refused.text():
            problems.append(f"a key holder clearing the cache got {refused.status}")
        context.close()

    for p in problems:
        print(f"problem: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
