"""The dashboard in a real browser, against the running system fed by the simulator.

Kafka, Redis, the worker and the scorer run for real (the scorer serves the page at
``/dashboard``); simulated shoppers search, click and buy in a background thread. A
headless Chromium (Debian's ``chromium`` and ``chromedriver``, driven by Selenium) opens
the page and must see every chart drawn with data; then it rolls serving back to an
older kept version with the page's own control, and unpins again. Screenshots go to
``artifacts/`` (``dashboard.png``, ``dashboard-pinned.png``).
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest
import redis

from ops.processes import scorer_process, worker_process
from ops.services import free_port
from ops.simulator import Simulator, run_traffic
from streams.producer import EventProducer
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
TOKEN = "dashboard-test-token"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

# JavaScript: per chart, its title, the points it holds and how many canvas pixels are drawn
CHART_STATE = """
return [...document.querySelectorAll('.chart')].map(el => {
  const c = el.querySelector('canvas');
  let inked = 0;
  if (c) {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) inked++;
  }
  return {title: el.querySelector('h3').textContent, points: +el.dataset.points, inked};
});
"""


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--disable-gpu", "--window-size=1600,2000"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


class Traffic(threading.Thread):
    """Simulated shoppers against the scorer until stopped."""

    def __init__(self, env: dict[str, str], base_url: str) -> None:
        super().__init__(daemon=True)
        self.env = env
        self.base_url = base_url
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            sim = Simulator(n_users=100, n_items=150, seed=0, run_id="dash",
                            clock=lambda: int(time.time() * 1000))
            producer = EventProducer(self.env["STREAMRANK_KAFKA_BOOTSTRAP_SERVERS"],
                                     self.env["STREAMRANK_TOPIC_PREFIX"])
            client = httpx.Client(base_url=self.base_url, timeout=10)

            def rank(body):
                data = client.post("/rank", content=orjson.dumps(body),
                                   headers={"content-type": "application/json"}).json()
                return [it["item_id"] for it in data["items"]], data["impression_id"]

            for ev in sim.catalog_events():
                producer.item(ev)
            producer.flush()
            while not self.stop.is_set():
                run_traffic(sim, rank, producer, n_requests=100, should_stop=self.stop.is_set)
                producer.flush()
                time.sleep(0.05)  # about 1,000 searches a second at most: the 2 cores share
            producer.close(timeout=10)
            client.close()
        except BaseException as exc:  # reported by the test
            self.error = exc


def test_the_dashboard_draws_live_charts_and_its_control_rolls_back(
        settings_env: dict[str, str], tmp_path: Path) -> None:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail("needs Debian's chromium and chromium-driver: run scripts/bootstrap dev")
    env = {**settings_env, "STREAMRANK_ADMIN_TOKEN": TOKEN,
           "STREAMRANK_MONITOR_INTERVAL_S": "0.5", "STREAMRANK_MONITOR_PSI_REFERENCE": "1000",
           "STREAMRANK_SNAPSHOT_KEEP": "4"}
    prefix = env["STREAMRANK_REDIS_PREFIX"]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    r = redis.Redis.from_url(env["STREAMRANK_REDIS_URL"])
    ARTIFACTS.mkdir(exist_ok=True)
    with worker_process(env, tmp_path / "worker.log") as worker, \
            scorer_process(env, port, tmp_path / "scorer.log"):
        traffic = Traffic(env, base)
        traffic.start()
        browser = _browser()
        try:
            def enough_points() -> int:
                assert worker.alive(), worker.log_tail()
                assert traffic.error is None, traffic.error
                return r.xlen(f"{prefix}monitor:series") >= 20 and r.zcard(
                    f"{prefix}snapshot:versions") >= 3
            wait_for(enough_points, timeout=150, interval=0.5,
                     message="the worker's monitor writing points")
            browser.get(f"{base}/dashboard")

            def all_charts_drawn() -> list[dict] | None:
                charts = browser.execute_script(CHART_STATE)
                missing = [c for c in charts if c["points"] < 2 or c["inked"] < 200]
                return None if missing or not charts else charts
            try:
                charts = wait_for(all_charts_drawn, timeout=90, interval=1.0,
                                  message="every chart drawn with data")
            finally:
                browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))
                print(browser.execute_script(CHART_STATE), worker.log_tail(20))
            assert len(charts) >= 12

            # roll back with the page's control to a version the monitor marked good (plain
            # versions are trimmed within seconds while the learner publishes). The newest
            # such one: the oldest good version leaves the good set (and is trimmed) when the
            # monitor marks its next one, which can happen before the click on a slow machine.
            def older_good() -> list[int]:
                current = int(r.get(f"{prefix}snapshot:current"))
                return [int(v) for v in r.zrange(f"{prefix}snapshot:good", 0, -1)
                        if int(v) < current]
            target = wait_for(older_good, timeout=60, message="a version marked good")[-1]
            # the page draws its list every 2 s: it may still show the target as the
            # current version (its button disabled) until the next draw
            wait_for(lambda: browser.execute_script(
                "const b = document.querySelector(arguments[0]); return !!b && !b.disabled;",
                f'button.serve[data-version="{target}"]'), timeout=10,
                message="the version list offering that version")
            browser.find_element("id", "token").send_keys(TOKEN)
            # the page redraws its version list every 2 s while new versions arrive, so the
            # button is found and clicked in one script (element.click() runs its handler
            # wherever the row is drawn); the page then says what happened
            clicked = browser.execute_script(
                "const b = document.querySelector(arguments[0]);"
                "if (!b) return 'missing'; if (b.disabled) return 'disabled';"
                "b.click(); return 'clicked';", f'button.serve[data-version="{target}"]')
            assert clicked == "clicked", (target, clicked)
            try:
                wait_for(lambda: browser.find_element("tag name", "body").get_attribute(
                    "data-pinned") == str(target), timeout=15, message="the page showing the pin")
            except AssertionError:
                browser.save_screenshot(str(ARTIFACTS / "dashboard-failed.png"))
                body = browser.find_element("tag name", "body")
                result = browser.find_element("id", "action-result")
                raise AssertionError(
                    f"target v{target}; page: {result.get_attribute('textContent')!r} "
                    f"(status {result.get_attribute('data-status')!r}), "
                    f"pinned {body.get_attribute('data-pinned')!r}, error "
                    f"{body.get_attribute('data-error')!r}; redis: current {r.get(f'{prefix}snapshot:current')!r}, "
                    f"pinned {r.get(f'{prefix}snapshot:pinned')!r}, kept "
                    f"{r.zrange(f'{prefix}snapshot:versions', 0, -1)!r}, audit "
                    f"{r.xrevrange(f'{prefix}snapshot:audit', count=3)!r}") from None
            assert int(r.get(f"{prefix}snapshot:current")) == target
            assert int(r.get(f"{prefix}snapshot:pinned")) == target
            entry = orjson.loads(r.xrevrange(f"{prefix}snapshot:audit", count=1)[0][1][b"entry"])
            assert entry["action"] == "rollback" and entry["to"] == target
            assert entry["who"].startswith("dashboard (api")
            # the scorer follows the pointer, and the learner's new versions do not move it
            wait_for(lambda: httpx.get(f"{base}/model").json()["model_version"] == f"v{target}",
                     timeout=15, message="the scorer serving the pinned version")
            newest = int(r.zrange(f"{prefix}snapshot:versions", -1, -1)[0])
            wait_for(lambda: int(r.zrange(f"{prefix}snapshot:versions", -1, -1)[0]) > newest,
                     timeout=15, message="the learner publishing a newer version while pinned")
            assert int(r.get(f"{prefix}snapshot:current")) == target
            wait_for(lambda: "PINNED" in browser.find_element("id", "pin").text, timeout=10)
            browser.save_screenshot(str(ARTIFACTS / "dashboard-pinned.png"))

            browser.find_element("id", "unpin").click()
            wait_for(lambda: browser.find_element("tag name", "body").get_attribute(
                "data-pinned") == "", timeout=15, message="the page showing no pin")
            assert r.get(f"{prefix}snapshot:pinned") is None
            assert int(r.get(f"{prefix}snapshot:current")) > target
            # a wrong token is refused and changes nothing
            refused = httpx.post(f"{base}/admin/rollback", json={"version": target},
                                 headers={"authorization": "Bearer wrong"})
            assert refused.status_code == 403 and r.get(f"{prefix}snapshot:pinned") is None
        finally:
            browser.quit()
            traffic.stop.set()
            traffic.join(timeout=30)
    r.close()
