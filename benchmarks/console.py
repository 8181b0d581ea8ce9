"""The web console's load on a long session, and its screenshots.

Measure (default): one `everloop serve` (SQLite, temp data dir) and a session of at least
--events events (turns of an llmsim model that calls `get_current_time` then answers, ~20
events each), plus a small session (one turn) to compare. Debian's chromium (headless, through
Playwright; no browser download) opens each session's page --runs times in a fresh context,
signed in through session storage, and records, once the page is ready (the stream is live,
the chat and the timeline drawn):

- first paint and first contentful paint (Paint Timing), DOMContentLoaded (Navigation Timing),
  and ready: `performance.now()` when the stream reports live;
- the JS heap in use and the DOM node count (Chrome DevTools Protocol `Performance.getMetrics`),
  and how many timeline rows and chat messages are in the page;
- the time to load the next 200 older events into the timeline (one click).

Median over the runs. Nothing is asserted: the figures go in docs/benchmarks.md.

Screenshots (--screenshots DIR): the sessions list, a session mid-turn (its tool call done, the
answer still coming) and an agent editor, as PNG files in DIR (docs/console/ in the repo).

Usage: python benchmarks/console.py [--events 5000] [--runs 5]
       python benchmarks/console.py --screenshots docs/console
Talks to 127.0.0.1 only; starts and stops its own server in a temporary directory.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
START_TIMEOUT = 60.0
TIME_SCRIPT = {
    "response": {"type": "echo"},
    "tool_calls": [{"when": "time", "name": "get_current_time", "arguments": {}}],
    "chunk_chars": 8,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(root: Path) -> Iterator[tuple[str, httpx.Client, str]]:
    """An `everloop serve` on a free port: its base URL, an API client and the admin token."""
    port = free_port()
    data_dir = root / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVERLOOP_")}
    env["EVERLOOP_LOG_LEVEL"] = "WARNING"
    listen = ["--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)]
    everloop = shutil.which("everloop", path=str(Path(sys.executable).parent)) or "everloop"
    with (root / "serve.log").open("ab") as log:
        proc = subprocess.Popen(
            [everloop, "serve", *listen],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"server did not start: {(root / 'serve.log').read_text()}")
            time.sleep(0.05)
        token = (data_dir / "admin-token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=f"{base}/api/v1/", headers=headers, timeout=30) as client:
            yield base, client, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def ok(response: httpx.Response) -> Any:
    response.raise_for_status()
    return response.json() if response.content else None


def llmsim_model(client: httpx.Client, script: dict[str, Any], name: str) -> str:
    provider = next(p for p in ok(client.get("providers"))["data"] if p["driver"] == "llmsim")
    body = {"model_id": name, "settings": {"llmsim": script}}
    return str(ok(client.post(f"providers/{provider['id']}/models", json=body))["id"])


def wait_idle(client: httpx.Client, session_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while ok(client.get(f"sessions/{session_id}"))["status"] != "idle":
        if time.monotonic() > deadline:
            raise TimeoutError("the turn did not finish")
        time.sleep(0.005)


def post(client: httpx.Client, session_id: str, text: str) -> None:
    body = {"message": {"role": "user", "content": [{"type": "text", "text": text}]}}
    ok(client.post(f"sessions/{session_id}/messages", json=body))


def last_sequence(client: httpx.Client, session_id: str) -> int:
    found = ok(client.get(f"sessions/{session_id}/events", params={"limit": 1}))["data"]
    return int(found[0]["sequence"]) if found else 0


def session_of(client: httpx.Client, model_id: str, events: int, title: str) -> str:
    """A session whose turns (each waited for) add up to at least ``events`` events."""
    body = {"model_id": model_id, "title": title, "capabilities": [{"ref": "current_time"}]}
    session_id = str(ok(client.post("sessions", json=body))["id"])
    turn = 0
    while turn == 0 or last_sequence(client, session_id) < events:
        turn += 1
        post(client, session_id, f"turn {turn}: what time is it?")
        wait_idle(client, session_id)
    return session_id


def open_signed_in(page: Page, base: str, token: str, where: str) -> None:
    page.add_init_script(f"sessionStorage.setItem('everloop.token', {json.dumps(token)})")
    page.goto(f"{base}/{where}")


def measure(page: Page, base: str, token: str, session_id: str) -> dict[str, float]:
    cdp = page.context.new_cdp_session(page)
    cdp.send("Performance.enable")
    open_signed_in(page, base, token, f"#/sessions/{session_id}")
    page.wait_for_selector("#stream-state[data-state=live]", timeout=60_000)
    timings = page.evaluate(
        """() => {
          const paint = Object.fromEntries(
            performance.getEntriesByType('paint').map(e => [e.name, e.startTime]));
          const nav = performance.getEntriesByType('navigation')[0];
          return {first_paint_ms: paint['first-paint'],
                  first_contentful_paint_ms: paint['first-contentful-paint'],
                  dom_content_loaded_ms: nav.domContentLoadedEventEnd,
                  ready_ms: performance.now(),
                  timeline_rows: document.querySelectorAll('.timeline li').length,
                  chat_messages: document.querySelectorAll('.msg').length};
        }"""
    )
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    timings["js_heap_used_mb"] = metrics["JSHeapUsedSize"] / 1e6
    timings["dom_nodes"] = metrics["Nodes"]
    rows = timings["timeline_rows"]
    started = time.monotonic()
    if page.locator("text=Load older events").is_visible():
        page.get_by_role("button", name="Load older events").click()
        page.wait_for_function(
            "rows => document.querySelectorAll('.timeline li').length > rows", arg=rows
        )
    timings["load_older_ms"] = (time.monotonic() - started) * 1000
    cdp.detach()
    return timings


def run_measure(events: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, serve(Path(tmp)) as (base, client, token):
        model_id = llmsim_model(client, TIME_SCRIPT, "clock")
        began = time.monotonic()
        big = session_of(client, model_id, events, "long")
        built_s = time.monotonic() - began
        small = session_of(client, model_id, 1, "short")
        sizes = {
            "long": last_sequence(client, big),
            "short": last_sequence(client, small),
        }
        results: dict[str, list[dict[str, float]]] = {"long": [], "short": []}
        load_before = os.getloadavg()[0]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                for _ in range(runs):
                    for name, session_id in (("short", small), ("long", big)):
                        context = browser.new_context(viewport={"width": 1280, "height": 800})
                        try:
                            results[name].append(
                                measure(context.new_page(), base, token, session_id)
                            )
                        finally:
                            context.close()
            finally:
                browser.close()
        report: dict[str, Any] = {
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}",
            "load_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "events": sizes,
            "built_long_session_s": round(built_s, 1),
            "runs": runs,
        }
        for name, found in results.items():
            report[name] = {
                key: round(statistics.median(r[key] for r in found), 1) for key in found[0]
            }
        print(json.dumps(report, indent=2))


def run_screenshots(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, serve(Path(tmp)) as (base, client, token):
        clock = llmsim_model(client, TIME_SCRIPT, "clock")
        slow = llmsim_model(client, {**TIME_SCRIPT, "latency_ms": 4000}, "clock-slow")
        agent = ok(
            client.post(
                "agents",
                json={
                    "name": "support",
                    "display_name": "Support desk",
                    "system_prompt": "You answer customers' questions about their orders.\n"
                    "Be brief; ask for the order number when it is missing.",
                    "default_model_id": clock,
                    "capabilities": [
                        {"ref": "current_time"},
                        {"ref": "loop_detection", "config": {"max_repeats": 3}},
                    ],
                },
            )
        )
        for title, tags in (
            ("Refund for order 1042", ["billing"]),
            ("Where is my parcel?", ["shipping"]),
            ("Change delivery address", ["shipping", "vip"]),
        ):
            body = {"agent_id": agent["id"], "title": title, "tags": tags}
            session_id = ok(client.post("sessions", json=body))["id"]
            post(client, session_id, "what time do you close?")
            wait_idle(client, session_id)
        ok(client.put(f"sessions/{session_id}/pin"))
        running = ok(
            client.post(
                "sessions",
                json={
                    "agent_id": agent["id"],
                    "model_id": slow,
                    "title": "Opening hours",
                    "tags": ["store"],
                },
            )
        )["id"]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                open_signed_in(page, base, token, f"#/sessions/{running}")
                page.wait_for_selector("#stream-state[data-state=live]")
                page.get_by_role("textbox", name="Message").fill("what time is it in Kyiv?")
                page.get_by_role("button", name="Send", exact=True).click()
                page.wait_for_selector(".tool .tool-status:text('done')", timeout=30_000)
                page.locator("details.tool summary").first.click()
                page.screenshot(path=str(out / "session.png"))
                page.goto(f"{base}/#/sessions")
                page.wait_for_selector("table.list tbody tr")
                page.screenshot(path=str(out / "sessions.png"))
                page.goto(f"{base}/#/agents/{agent['id']}")
                page.wait_for_selector("form.editor")
                page.screenshot(path=str(out / "agent.png"))
            finally:
                browser.close()
    print(f"screenshots in {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--screenshots", type=Path, help="take the screenshots into this dir")
    args = parser.parse_args()
    if args.screenshots:
        run_screenshots(args.screenshots)
    else:
        run_measure(args.events, args.runs)


if __name__ == "__main__":
    main()
