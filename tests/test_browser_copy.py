"""A new user, in a real browser, signs up, links accounts and watches a trade copy live.

Everything runs for real: Chromium drives the web server (uvicorn, as in
production), the copier daemon copies the trade, and the dashboard updates
over its WebSocket without a reload.
"""

from __future__ import annotations

import email
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import ROOT, wait_for

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 20_000
ARTIFACTS = ROOT / "test-artifacts"
CONFIRM_URL = re.compile(r"https?://[^\s/]+(/accounts/confirm-email/[^\s/]+/)")


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


def _confirmation_path(mail_dir: Path) -> str:
    """The confirmation link in the newest mail the web server wrote."""

    def link_in_newest_mail() -> str | None:
        files = sorted(mail_dir.glob("*"), key=lambda p: p.stat().st_mtime)
        if not files:
            return None
        # The file backend writes each message followed by a separator line.
        raw = files[-1].read_text().split("\n" + "-" * 79, 1)[0]
        body = "".join(
            part.get_payload(decode=True).decode()
            for part in email.message_from_string(raw).walk()
            if part.get_content_type() == "text/plain"
        )
        match = CONFIRM_URL.search(body)
        return match.group(1) if match else None

    return str(wait_for(link_in_newest_mail, what=f"a confirmation link mailed to {mail_dir}"))


def _sign_up(page: Page, base: str, mail_dir: Path, address: str, password: str) -> None:
    page.goto(f"{base}/accounts/signup/")
    form = page.locator("form:has([name=password2])")
    form.locator("[name=email]").fill(address)
    form.locator("[name=password1]").fill(password)
    form.locator("[name=password2]").fill(password)
    form.locator("[type=submit]").click()
    page.wait_for_load_state()

    page.goto(base + _confirmation_path(mail_dir))
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_load_state()
    page.goto(f"{base}/dashboard/")
    if "/accounts/login/" in page.url:
        page.locator("[name=login]").fill(address)
        page.locator("[name=password]").fill(password)
        page.locator("form:has([name=login]) [type=submit]").click()
        page.wait_for_url(re.compile(r"/dashboard/$"))
    expect(page.locator("header .who")).to_have_text(address)


def _link_paper_account(page: Page, base: str, label: str, role: str) -> str:
    """Link a Paper account; return the URL of its page."""
    page.goto(f"{base}/brokers/new/")
    page.locator("[name=label]").fill(label)
    page.locator("[name=role]").select_option(role)
    page.locator("[name=currency]").select_option("USD")
    page.locator("[name=starting_balance]").fill("50000")
    page.get_by_role("button", name="Link account").click()
    page.wait_for_url(re.compile(r"/brokers/\d+/$"))
    expect(page.locator("h1")).to_contain_text(label)
    return page.url


def _link(page: Page, base: str, master: str, follower: str, multiplier: str) -> None:
    page.goto(f"{base}/links/")
    form = page.locator("form[data-testid=new-link]")
    form.locator("[name=master]").select_option(label=f"{master} (Paper)")
    form.locator("[name=follower]").select_option(label=f"{follower} (Paper)")
    form.locator("[name=multiplier]").fill(multiplier)
    form.get_by_role("button", name="Create link").click()
    expect(page.locator(".msg.success")).to_contain_text(f"{follower} now copies {master}")


def test_it_copies_a_trade_live_on_the_dashboard(
    transactional_db, web_server, copier_daemon, process_env, browser
):
    copier_daemon()
    base = web_server
    address = f"trader-{secrets.token_hex(4)}@example.com"
    password = "Tr4de-" + secrets.token_urlsafe(12)
    context = browser.new_context(base_url=base)
    context.set_default_timeout(WAIT_MS)
    page_b = context.new_page()

    _sign_up(page_b, base, Path(process_env["EMAIL_FILE_PATH"]), address, password)
    master_url = _link_paper_account(page_b, base, "Gold master", "master")
    _link_paper_account(page_b, base, "Follower full", "follower")
    _link_paper_account(page_b, base, "Follower half", "follower")
    _link(page_b, base, "Gold master", "Follower full", "1")
    _link(page_b, base, "Gold master", "Follower half", "0.5")

    page_a = context.new_page()
    page_a.goto(f"{base}/dashboard/")
    expect(page_a.locator("#live-state")).to_have_attribute("data-state", "live")
    live = page_a.locator("#live")
    expect(live.locator("tr.position")).to_have_count(0)
    page_a.evaluate("window.__marker = 1")

    # Page B places the master's trade with the ticket.
    page_b.goto(master_url)
    ticket = page_b.locator("form[data-testid=ticket]")
    ticket.locator("[name=symbol]").fill("XAUUSD")
    ticket.locator("[name=side]").select_option("buy")
    ticket.locator("[name=volume]").fill("2")
    ticket.locator("[name=price]").fill("2350.5")
    ticket.locator("[data-testid=place]").click()
    expect(page_b.locator(".msg.success")).to_contain_text("Bought 2 XAUUSD at 2350.5")

    # Page A shows the copies by itself.
    for label, volume in [("Gold master", "2"), ("Follower full", "2"), ("Follower half", "1")]:
        card = live.locator(f'.card[data-account="{label}"]')
        expect(
            card.locator(f'tr.position[data-symbol="XAUUSD"][data-volume="{volume}"]')
        ).to_have_count(1, timeout=WAIT_MS)
        expect(card.locator("tr.position")).to_have_count(1)
    filled = live.locator("tr.execution.status-filled")
    expect(filled).to_have_count(2, timeout=WAIT_MS)
    for row in filled.all():
        expect(row.locator("td.num").last).to_have_text(re.compile(r"^\d+ µs$"))
    expect(live.locator("[data-testid=latency]")).to_contain_text("µs")
    ARTIFACTS.mkdir(exist_ok=True)
    page_a.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    # Page B closes the master position; page A sees all three go flat.
    row = page_b.locator("table[data-testid=open-positions] tr[data-position]")
    expect(row).to_have_count(1)
    position_id = row.get_attribute("data-position")
    page_b.locator(f"[data-testid=close-{position_id}]").click()
    expect(page_b.locator(".msg.success")).to_contain_text("Closed 2 XAUUSD")

    expect(live.locator("tr.position")).to_have_count(0, timeout=WAIT_MS)
    for label in ("Gold master", "Follower full", "Follower half"):
        expect(live.locator(f'.card[data-account="{label}"] .empty')).to_have_text("flat")
    expect(filled).to_have_count(4, timeout=WAIT_MS)
    assert page_a.evaluate("window.__marker") == 1, "the dashboard reloaded"
    assert page_a.url == f"{base}/dashboard/"
    context.close()
