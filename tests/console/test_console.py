"""The console in a real browser: sign-in, the figures it shows, keys managed on the page, safety."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from proxy.request_log.batch import write_batch
from tests.console.conftest import Gateway, Page, run_async
from tests.support.factories import ADMIN_KEY, USER_KEY
from tests.support.polling import wait_until_sync
from tests.support.records import make_record

# Ten days back, so the page's own requests (logged now) never fall into the range read.
DAY = (datetime.now(UTC) - timedelta(days=10)).replace(hour=10, minute=0, second=0, microsecond=0)
SCRIPT_NAME = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def seeded(gateway: Gateway) -> None:
    """demo-user: 6 requests on llama3.2 (one a 500); demo-admin: 4 on qwen3 at node b. 11 prompt and 5
    completion tokens each."""

    async def seed() -> None:
        conn = await asyncpg.connect(gateway.database_url)
        try:
            ids = dict(await conn.fetch("SELECT name, id FROM api_keys WHERE name LIKE 'demo-%'"))
            records = [
                make_record(api_key_id=ids["demo-user"], created_at=DAY + timedelta(minutes=i), node="a", ttfb=25.0)
                for i in range(5)
            ]
            records.append(make_record(api_key_id=ids["demo-user"], created_at=DAY, status_code=500, node="a"))
            records += [
                make_record(
                    api_key_id=ids["demo-admin"],
                    model="qwen3",
                    created_at=DAY + timedelta(hours=1, minutes=i),
                    node="b",
                )
                for i in range(4)
            ]
            await write_batch(conn, records)
        finally:
            await conn.close()

    run_async(seed())


def sign_in(page: Page, gateway: Gateway, key: str) -> None:
    page.page.goto(gateway.url("/ui/"))
    page.page.fill("#api-key", key)
    page.page.press("#api-key", "Enter")  # the keyboard, as a person would
    page.page.wait_for_selector("#tiles div")


def show_seeded_range(page: Page) -> None:
    p = page.page
    p.select_option("#range", "custom")
    p.fill("#since", DAY.strftime("%Y-%m-%dT%H:%M"))
    p.fill("#until", (DAY + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M"))
    p.click("#usage-form button[type=submit]")
    wait_until_sync(lambda: "by the hour" in p.inner_text("#usage-range"), "the custom range shown")


def figure(page: Page, name: str) -> str:
    return page.page.inner_text(f"[data-figure={name}] dd")


def table_rows(page: Page, testid: str) -> list[list[str]]:
    return page.page.eval_on_selector_all(
        f"[data-testid={testid}] tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )


def only_own_origin(page: Page, gateway: Gateway) -> None:
    foreign = [url for url in page.requests if not url.startswith((gateway.origin + "/", "data:", "blob:"))]
    assert page.requests and not foreign, foreign


def curl(gateway: Gateway, path: str, key: str) -> tuple[int, dict]:
    result = subprocess.run(
        ["curl", "-sS", "-w", "\n%{http_code}", "-H", f"Authorization: Bearer {key}", gateway.url(path)],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    body, _, status = result.stdout.rpartition("\n")
    return int(status), json.loads(body)


def test_admin_sees_the_seeded_figures_and_every_section(page, gateway, seeded):
    sign_in(page, gateway, ADMIN_KEY)
    assert page.page.is_visible("#tabs [data-tab=keys]") and page.page.is_visible("#tabs [data-tab=nodes]")
    show_seeded_range(page)
    wait_until_sync(lambda: figure(page, "requests") == "10", "the seeded requests shown")
    assert (figure(page, "errors"), figure(page, "prompt_tokens"), figure(page, "completion_tokens")) == (
        "1",
        "110",
        "50",
    )
    assert float(figure(page, "p50_ttfb_ms")) == pytest.approx(25.0, rel=0.15)
    assert {row[0]: row[1] for row in table_rows(page, "by-key")} == {"demo-user": "6", "demo-admin": "4"}
    assert {row[0]: row[1] for row in table_rows(page, "by-model")} == {"llama3.2": "6", "qwen3": "4"}
    assert {row[0]: row[1] for row in table_rows(page, "by-node")} == {"a": "6", "b": "4"}
    assert page.page.locator("#chart-split canvas").count() == 1
    print(page.shot("usage-admin"))
    only_own_origin(page, gateway)
    assert not page.errors, page.errors  # a CSP violation is reported here too


def test_a_user_sees_its_own_usage_and_limits_and_nothing_else(page, gateway, seeded):
    sign_in(page, gateway, USER_KEY)
    for tab in ("live", "keys", "nodes"):
        assert not page.page.is_visible(f"#tabs [data-tab={tab}]")
    assert not page.page.is_visible("#usage-key")
    show_seeded_range(page)
    wait_until_sync(lambda: figure(page, "requests") == "6", "the seeded requests shown")
    assert figure(page, "errors") == "1"
    assert "demo-user" in page.page.inner_text("#my-key-facts")
    # The key is kept nowhere; the token only in this tab's sessionStorage, never in the URL or a cookie.
    storage = page.page.evaluate("JSON.stringify([sessionStorage, localStorage, document.cookie])")
    assert USER_KEY not in storage and "ogw.console.token" in storage
    assert USER_KEY not in page.page.url and "token" not in page.page.url
    assert page.page.input_value("#api-key") == ""
    print(page.shot("usage-user"))
    page.page.click("#sign-out")
    assert page.page.is_visible("#sign-in")
    assert page.page.evaluate("sessionStorage.length") == 0


def test_a_key_made_on_the_page_works_until_it_is_revoked_there(page, gateway):
    alerts: list[str] = []
    page.page.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
    sign_in(page, gateway, ADMIN_KEY)
    p = page.page
    p.click("#tabs [data-tab=keys]")
    p.wait_for_selector("[data-testid=key-list]")
    p.click("#create-key summary")
    p.fill("#create-form-name", SCRIPT_NAME)
    p.fill("#create-form-models", "llama3.2, qwen3")
    p.fill("#create-form-tokens_per_day", "5000")
    p.click("#create-form button[type=submit]")
    p.wait_for_selector("#new-key:not([hidden])")
    key = p.inner_text("#new-key-value")
    assert key.startswith("olg_")
    p.click("#copy-key")
    wait_until_sync(lambda: p.inner_text("#message") == "Copied.", "the key copied")
    # A real HTTP client with the key just shown.
    status, me = curl(gateway, "/api/auth/key", key)
    assert status == 200 and me["name"] == SCRIPT_NAME and me["models"] == ["llama3.2", "qwen3"]
    # The name is text: no alert ran, and the cell holds the characters themselves.
    row = p.locator("[data-testid=key-list] tbody tr", has_text=SCRIPT_NAME)
    assert row.locator("[data-col=name]").inner_text() == SCRIPT_NAME
    assert p.locator("[data-testid=key-list] script").count() == 0 and not alerts
    print(page.shot("keys-created"))

    row.get_by_role("button", name="Edit").click()
    p.fill("#edit-form-rate_limit", "77")
    p.click("#edit-form button[type=submit]")
    p.wait_for_selector("#edit-dialog:not([open])", state="attached")
    wait_until_sync(lambda: curl(gateway, "/api/auth/key", key)[1]["rate_limit"] == 77, "the edit reached the key")

    row = p.locator("[data-testid=key-list] tbody tr", has_text=SCRIPT_NAME)
    row.get_by_role("button", name="Revoke").click()
    assert SCRIPT_NAME in p.inner_text("#revoke-dialog")
    print(page.shot("keys-revoke-confirm"))
    p.click("#revoke-confirm")
    p.locator("[data-testid=key-list] tbody tr", has_text=SCRIPT_NAME).locator("text=revoked").wait_for()
    status, body = curl(gateway, "/api/auth/key", key)
    assert status == 401 and "error" in body
    assert not alerts and not page.errors, page.errors
    only_own_origin(page, gateway)


def test_live_requests_filter_and_nodes(page, gateway, seeded):
    sign_in(page, gateway, ADMIN_KEY)
    p = page.page
    p.click("#tabs [data-tab=live]")
    p.wait_for_selector("[data-testid=logs] tbody tr")
    assert p.inner_text("#in-flight") != "–"
    p.fill("#logs-model", "qwen3")
    p.click("#logs-form button[type=submit]")
    wait_until_sync(lambda: [row[4] for row in table_rows(page, "logs")] == ["qwen3"] * 4, "4 rows of qwen3")
    # It refreshes by itself: a request made now shows up without a reload.
    p.fill("#logs-model", "")
    p.click("#logs-form button[type=submit]")
    assert curl(gateway, "/api/stats", ADMIN_KEY)[0] == 200
    wait_until_sync(lambda: any(row[3] == "/api/stats" for row in table_rows(page, "logs")), "the new request shown")
    print(page.shot("live"))
    p.click("#tabs [data-tab=nodes]")
    p.wait_for_selector("[data-testid=node-list] tbody tr")
    print(page.shot("nodes"))
    assert not page.errors, page.errors


@pytest.mark.parametrize(
    ("path", "ready"),
    [("/ui/", "#sign-in-form"), ("/docs", ".swagger-ui .info"), ("/redoc", "[role=search], .api-content")],
)
def test_pages_load_nothing_from_outside_and_break_no_csp_rule(page, gateway, path, ready):
    page.page.goto(gateway.url(path))
    page.page.wait_for_selector(ready)  # drawn from /openapi.json: every file it needs has been asked for
    print(page.shot("page" + path.replace("/", "-").rstrip("-")))
    only_own_origin(page, gateway)
    assert not page.errors, page.errors
    csp = page.page.evaluate("fetch(location.href).then(r => r.headers.get('content-security-policy'))")
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp


def test_usable_on_a_phone_sized_screen(phone, gateway, seeded):
    sign_in(phone, gateway, ADMIN_KEY)
    show_seeded_range(phone)
    wait_until_sync(lambda: figure(phone, "requests") == "10", "the seeded requests shown")
    assert phone.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    print(phone.shot("usage-phone"))


@pytest.mark.parametrize(
    ("path", "ready"),
    [("/ui/", None), ("/docs", ".swagger-ui .info"), ("/redoc", "[role=search], .api-content")],
)
def test_behind_a_path_prefix_every_request_stays_under_it(page, prefixed, seeded, path, ready):
    if ready is None:  # the console, signed in, through each of its sections
        sign_in(page, prefixed, ADMIN_KEY)
        show_seeded_range(page)
        wait_until_sync(lambda: figure(page, "requests") == "10", "the seeded requests shown")
        for tab, drawn in (("keys", "key-list"), ("live", "logs"), ("nodes", "node-list")):
            page.page.click(f"#tabs [data-tab={tab}]")
            page.page.wait_for_selector(f"[data-testid={drawn}] tbody tr")
        print(page.shot("behind-prefix"))
    else:
        page.page.goto(prefixed.url(path))
        page.page.wait_for_selector(ready)
    only_own_origin(page, prefixed)  # under the prefix: nothing asked of the host's root
    assert not page.errors, page.errors


_FOCUSED = """([selector, row]) => {
    const e = document.activeElement;
    return !!e && e.matches(selector) && (!row || (e.closest("tr")?.textContent ?? "").includes(row));
}"""


def tab_to(page: Page, selector: str, *, row: str | None = None, presses: int = 80) -> None:
    """Press Tab until `selector` (in the table row that shows `row`) has the focus, as a keyboard user would."""
    for _ in range(presses):
        if page.page.evaluate(_FOCUSED, [selector, row]):
            return
        page.page.keyboard.press("Tab")
    raise AssertionError(f"{selector} cannot be reached with the Tab key")


def test_every_section_and_a_new_key_with_the_keyboard_alone(page, gateway, seeded):
    # As on plain HTTP from another host, where browsers give no clipboard API: the Copy button falls back.
    page.page.add_init_script("Object.defineProperty(navigator, 'clipboard', { value: undefined })")
    sign_in(page, gateway, ADMIN_KEY)  # typed, and sent with Enter
    p = page.page
    for tab, drawn in (("live", "logs"), ("nodes", "node-list"), ("keys", "key-list")):
        tab_to(page, f"#tabs [data-tab={tab}]")
        p.keyboard.press("Enter")
        p.wait_for_selector(f"[data-testid={drawn}]")
    tab_to(page, "#create-key summary")
    p.keyboard.press("Enter")  # opens the form
    tab_to(page, "#create-form-name")
    p.keyboard.type("typed-by-keyboard")
    p.keyboard.press("Enter")  # submits it
    p.wait_for_selector("#new-key:not([hidden])")
    key = p.inner_text("#new-key-value")
    assert curl(gateway, "/api/auth/key", key)[1]["name"] == "typed-by-keyboard"
    tab_to(page, "#copy-key")
    p.keyboard.press("Enter")
    wait_until_sync(lambda: p.inner_text("#message") == "Copied.", "the key copied without the clipboard API")
    row = p.locator("[data-testid=key-list] tbody tr", has_text="typed-by-keyboard")
    tab_to(page, "[data-testid=key-list] tbody button.danger", row="typed-by-keyboard")
    p.keyboard.press("Enter")
    tab_to(page, "#revoke-confirm")
    p.keyboard.press("Enter")
    row.locator("text=revoked").wait_for()
    assert curl(gateway, "/api/auth/key", key)[0] == 401
    assert not page.errors, page.errors


def test_live_requests_between_two_times(page, gateway, seeded):
    sign_in(page, gateway, ADMIN_KEY)
    p = page.page
    p.click("#tabs [data-tab=live]")
    p.wait_for_selector("[data-testid=logs] tbody tr")
    # The page shows and sends local times; the browser runs in UTC here, as the seeded DAY is.
    p.fill("#logs-since", DAY.strftime("%Y-%m-%dT%H:%M"))
    p.fill("#logs-until", (DAY + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M"))
    p.click("#logs-form button[type=submit]")
    wait_until_sync(lambda: len(table_rows(page, "logs")) == 10, "only the seeded requests")
    assert sorted(row[4] for row in table_rows(page, "logs")) == ["llama3.2"] * 6 + ["qwen3"] * 4
    assert not page.errors, page.errors
