"""The console in a real browser: Debian's Chromium driven by Playwright.

Skipped with the reason when Playwright or Chromium is missing, unless CHATOPSBOT_REQUIRE_BROWSER
is set (CI sets it): then those tests fail instead. With CHATOPSBOT_SCREENSHOTS=DIR the poll and
deploy screenshots are written there (that is how docs/img/console-*.png are made).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from chatopsbot.console import Console
from chatopsbot.console.cast import channel_jid
from tests.sample import Sample
from tests.test_console import Palette, post_to_zoom

CHROMIUM = os.environ.get("CHATOPSBOT_CHROMIUM", "/usr/bin/chromium")
OPS = channel_jid("ops")


def _missing() -> str | None:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[dev]')"
    if not os.access(CHROMIUM, os.X_OK):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CHATOPSBOT_CHROMIUM)"
    return None


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    problem = _missing()
    if problem is not None:
        if os.environ.get("CHATOPSBOT_REQUIRE_BROWSER"):
            pytest.fail(f"a browser is required here: {problem}")
        pytest.skip(problem)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        # Chromium's sandbox refuses to start as root (CI containers).
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def console(tmp_path) -> AsyncIterator[Console]:
    started = await Console.start(
        storage=str(tmp_path / "console.db"), plugins={"sample": Sample(), "palette": Palette()}
    )
    try:
        yield started
    finally:
        await started.close()


@pytest.fixture
async def page(browser, console) -> AsyncIterator[Any]:
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    opened = await context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    opened.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await opened.goto(f"{console.url}/console")
    await opened.wait_for_selector("body[data-ready=true]")
    yield opened
    await context.close()
    assert not errors, errors


def _shots(tmp_path: Path) -> Path:
    target = Path(os.environ.get("CHATOPSBOT_SCREENSHOTS") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    return target


async def _say(page: Any, text: str) -> None:
    await page.fill("#say", text)
    await page.press("#say", "Enter")
    # The composer empties once the console has taken the command.
    from playwright.async_api import expect

    await expect(page.locator("#say")).to_have_value("")


async def _act_as(page: Any, user: str) -> None:
    await page.select_option("#who", user)


async def test_a_command_and_its_reply(page, console):
    assert await page.locator(".empty").inner_text() == (
        "Nothing here yet. Type /opsbot help below (or just help)."
    )
    await _say(page, "/opsbot ping")
    reply = page.locator(".msg-bot", has_text="pong")
    await reply.wait_for()
    assert await page.locator(".empty").count() == 0
    # Up brings the last command back.
    await page.press("#say", "ArrowUp")
    assert await page.input_value("#say") == "/opsbot ping"
    await page.press("#say", "ArrowDown")
    assert await page.input_value("#say") == ""
    assert await page.locator(".msg-user .msg-text").inner_text() == "/opsbot ping"
    # The webhook and the API call are in the traffic panel with their status.
    await page.locator(".entry-webhook .entry-status", has_text="200").wait_for()
    await page.locator(".entry-api .entry-status", has_text="201").wait_for()
    await page.locator(".entry-api summary").first.click()
    assert (
        '"to_jid": "ops@conference.xmpp.zoom.us"'
        in await page.locator(".entry-api .json").first.inner_text()
    )


async def test_a_poll_voted_by_two_people(page, console, tmp_path):
    await page.evaluate("window.notReloaded = true")
    await _say(page, 'poll "Lunch?" Pizza Sushi Tacos')
    card = page.locator(".msg-bot", has=page.locator(".z-head", has_text="Lunch?"))
    await card.wait_for()
    poll_id = await card.get_attribute("data-message-id")
    assert await card.locator(".z-button-danger").inner_text() == "Close poll"

    await _act_as(page, "bob")
    await card.get_by_role("button", name="Pizza").click()
    await page.locator(".msg-bot", has_text="Pizza: 1 (Bob)").wait_for()
    mine = page.locator(".msg-bot", has_text="You voted Pizza")
    await mine.wait_for()
    assert await mine.locator(".private-note").inner_text() == "Only visible to you"

    await _act_as(page, "carol")
    assert await page.locator(".msg-bot", has_text="You voted Pizza").count() == 0
    await card.get_by_role("button", name="Sushi").click()
    await page.locator(".msg-bot", has_text="Sushi: 1 (Carol)").wait_for()
    await page.locator(".msg-bot", has_text="You voted Sushi").wait_for()
    assert await page.locator(".msg-bot", has_text="You voted Pizza").count() == 0

    # One card, edited in place: same message id, both votes, marked edited; no reload.
    cards = page.locator(".msg-bot", has=page.locator(".z-head", has_text="Lunch?"))
    assert await cards.count() == 1
    assert await cards.get_attribute("data-message-id") == poll_id
    text = await cards.inner_text()
    assert "Pizza: 1 (Bob)" in text
    assert "Sushi: 1 (Carol)" in text
    assert "(edited)" in text
    assert await page.evaluate("window.notReloaded") is True

    await _act_as(page, "bob")
    await page.locator(".msg-bot", has_text="You voted Pizza").wait_for()
    assert await page.locator(".msg-bot", has_text="You voted Sushi").count() == 0
    # What Zoom received for the last edit, as a plugin author would look it up.
    edit = page.locator(".entry-api", has_text="PUT /v2/im/chat/messages/").first
    await edit.locator("summary").click()
    assert "Sushi: 1 (Carol)" in await edit.locator(".json").first.inner_text()
    await page.screenshot(path=str(_shots(tmp_path) / "console-poll.png"))


async def test_a_deploy_hook_fed_from_the_hooks_tab(page, console, tmp_path):
    await _say(page, "deploy subscribe all")
    await page.locator(".msg-bot", has_text="This channel now gets deploys").wait_for()
    await page.get_by_role("tab", name="Hooks").click()
    assert await page.input_value("#hook-path") == "/hooks/deploy"
    await page.get_by_role("button", name="Send hook").click()
    await page.locator("#hook-result", has_text="202").wait_for()
    card = page.locator(".msg-bot", has=page.locator(".z-head", has_text="api → prod"))
    await card.wait_for()
    assert "started" in await card.inner_text()
    # The same deploy succeeding edits the card in place.
    body = (await page.input_value("#hook-body")).replace('"started"', '"succeeded"')
    await page.fill("#hook-body", body)
    # This time as CI with a bearer token sends it: unsigned, the token in a header.
    token = await page.input_value("#hook-secret")
    await page.fill("#hook-secret", "")
    await page.fill("#hook-headers", f"Authorization: Bearer {token}")
    await page.get_by_role("button", name="Send hook").click()
    await card.filter(has_text="succeeded").wait_for()
    assert await card.count() == 1
    await page.get_by_role("tab", name="Traffic").click()
    await page.locator(".entry-hook .entry-status", has_text="202").first.wait_for()
    await page.screenshot(path=str(_shots(tmp_path) / "console-deploy.png"))


async def test_injected_faults_show_in_the_traffic_and_the_reply_still_arrives(page, console):
    await page.get_by_role("tab", name="Zoom faults").click()
    await page.select_option("#fault-status", "503")
    await page.fill("#fault-count", "2")
    await page.get_by_role("button", name="Inject").click()
    await page.locator("#fault-result", has_text="Armed").wait_for()
    await _say(page, "ping")
    await page.locator(".msg-bot", has_text="pong").wait_for(timeout=20000)
    await page.get_by_role("tab", name="Traffic").click()
    statuses = await page.locator(".entry-api .entry-status").all_inner_texts()
    assert statuses == ["201", "503", "503"]  # newest first


EVERY_ELEMENT: dict[str, Any] = {
    "head": {
        "text": "Incident 42",
        "style": {"color": "#D64541", "bold": True},
        "sub_head": {"text": "payments · sev2", "style": {"italic": True}},
    },
    "body": [
        {"type": "message", "text": "Plain text <b>not bold</b>"},
        {"type": "message", "text": "Runbook", "link": "https://runbooks.example.com/42"},
        {"type": "message", "text": "bad link", "link": "javascript:alert(1)"},
        {
            "type": "fields",
            "items": [
                {"key": "Owner", "value": "Alice", "short": True},
                {"key": "State", "value": "open", "short": True},
                {"key": "Note", "value": "needs review", "editable": True},
            ],
        },
        {
            "type": "actions",
            "items": [
                {"text": "Ack", "value": "a", "style": "Primary"},
                {"text": "Later", "value": "l", "style": "Default"},
                {"text": "Page", "value": "p", "style": "Danger"},
                {"text": "Resolved", "value": "r", "style": "Disabled"},
            ],
        },
        {
            "type": "actions",
            "limit": 1,
            "items": [
                {"text": "Shown", "value": "s", "style": "Default"},
                {"text": "Tucked", "value": "t", "style": "Default"},
            ],
        },
        {
            "type": "video",
            "title": {"text": "Recording"},
            "title_url": "https://zoom.example.com/rec/1",
            "video_url": "https://zoom.example.com/rec/1.mp4",
            "thumbnail_url": "data:image/gif;base64,R0lGODlhAQABAAAAACw=",
            "author_name": "Alice",
            "provider_name": "Zoom",
        },
        {
            "type": "select",
            "text": "Severity",
            "select_items": [{"text": "sev1", "value": "1"}, {"text": "sev2", "value": "2"}],
            "selected_item": {"text": "sev2", "value": "2"},
        },
        {"type": "select", "text": "Assign", "static_source": "members"},
        {
            "type": "attachments",
            "resource_url": "https://grafana.example.com/d/1",
            "img_url": "data:image/gif;base64,R0lGODlhAQABAAAAACw=",
            "information": {"title": {"text": "Latency"}, "description": {"text": "p99, 1 h"}},
            "ext": "png",
            "size": 2048,
        },
        {
            "type": "file",
            "icon_url": "data:image/gif;base64,R0lGODlhAQABAAAAACw=",
            "title": {"text": "postmortem.pdf", "file_url": "https://files.example.com/pm.pdf"},
            "description": {"text": "draft"},
        },
        {"type": "divider", "style": {"bold": True, "dotted": True, "color": "#00ff00"}},
        {"type": "progress_bar", "value": 40},
        {"type": "alert", "text": "Customer impact", "level": "warning", "closable": True},
        {
            "type": "images",
            "cur_index": 1,
            "images": [
                {"image_url": "data:image/gif;base64,R0lGODlhAQABAAAAACw=", "alt_text": "one"},
                {"image_url": "data:image/gif;base64,R0lGODlhAQABAAAAACw=", "alt_text": "two"},
            ],
        },
        {
            "type": "radio_buttons",
            "action_id": "r1",
            "initial_option": {"value": "b", "text": "B"},
            "options": [{"value": "a", "text": "A"}, {"value": "b", "text": "B"}],
        },
        {
            "type": "checkboxes",
            "action_id": "c1",
            "options": [
                {"text": "X", "value": "x", "initial_selected": True},
                {"text": "Y", "value": "y"},
            ],
        },
        {"type": "datepicker", "action_id": "d", "initial_date": "2026-11-25"},
        {"type": "timepicker", "action_id": "t", "initial_time": "09:30"},
        {
            "type": "plain_text_input",
            "action_id": "i",
            "text": "Summary",
            "placeholder": "what happened",
            "multiline": True,
            "max_length": 200,
        },
        {
            "type": "section",
            "sidebar_color": "#2D8CFF",
            "sections": [{"type": "message", "text": "In a section"}],
            "footer": "PagerDuty",
            "footer_icon": "data:image/gif;base64,R0lGODlhAQABAAAAACw=",
            "ts": 1764000000000,
        },
        {
            "type": "page",
            "cur_page": 1,
            "pages": [
                {"pageNo": 1, "body": [{"type": "message", "text": "first page"}]},
                {"pageNo": 2, "body": [{"type": "message", "text": "second page"}]},
            ],
        },
        {"type": "hologram"},
    ],
}


async def test_every_card_element_is_drawn_from_its_json(page, console):
    await post_to_zoom(console, EVERY_ELEMENT)
    card = page.locator(".msg-bot .z-card")
    await card.wait_for()
    head = card.locator(".z-head")
    assert await head.inner_text() == "Incident 42"
    assert await head.evaluate("e => getComputedStyle(e).color") == "rgb(214, 69, 65)"
    assert (
        await card.locator(".z-subhead").evaluate("e => getComputedStyle(e).fontStyle") == "italic"
    )
    # Text is text: the markup in it is shown, not obeyed.
    assert await card.locator(".z-message").first.inner_text() == "Plain text <b>not bold</b>"
    assert await card.locator(".z-message b").count() == 0
    assert await card.locator("a", has_text="Runbook").get_attribute("href") == (
        "https://runbooks.example.com/42"
    )
    assert await card.locator("a", has_text="bad link").count() == 0
    assert await card.locator(".z-field-short").count() == 2
    assert await card.get_by_role("textbox", name="Note").input_value() == "needs review"
    styles = {
        name: await card.get_by_role("button", name=name, exact=True).get_attribute("class")
        for name in ("Ack", "Later", "Page", "Resolved")
    }
    assert styles == {
        "Ack": "z-button z-button-primary",
        "Later": "z-button z-button-default",
        "Page": "z-button z-button-danger",
        "Resolved": "z-button z-button-disabled",
    }
    assert await card.get_by_role("button", name="Resolved").is_disabled()
    # Buttons past `limit` wait in an overflow menu.
    assert not await card.get_by_role("button", name="Tucked").is_visible()
    await card.locator(".z-overflow summary").click()
    assert await card.get_by_role("button", name="Tucked").is_visible()
    video = card.locator(".z-video")
    assert await video.locator("a").get_attribute("href") == "https://zoom.example.com/rec/1"
    assert await video.locator(".z-attachment-meta").inner_text() == "Alice · Zoom"
    assert await card.get_by_label("Severity").input_value() == "2"
    members = await card.get_by_label("Assign").locator("option").all_inner_texts()
    assert members == ["Select a member", "Alice", "Bob", "Carol"]
    assert await card.locator(".z-attachment-title", has_text="Latency").get_attribute("href") == (
        "https://grafana.example.com/d/1"
    )
    assert await card.locator(".z-attachment .z-attachment-meta").first.inner_text() == (
        "png · 2.0 KB"
    )
    assert await card.locator("a", has_text="postmortem.pdf").count() == 1
    divider = card.locator(".z-divider")
    assert await divider.get_attribute("class") == "z-divider z-divider-bold z-divider-dotted"
    assert await card.get_by_role("progressbar").get_attribute("aria-valuenow") == "40"
    alert = card.get_by_role("alert")
    assert await alert.locator(".z-alert-text").inner_text() == "Customer impact"
    await alert.get_by_role("button", name="Close").click()
    assert await card.get_by_role("alert").count() == 0
    assert await card.locator(".z-images .z-images-count").inner_text() == "2 / 2"
    assert await card.get_by_role("radio", name="B").is_checked()
    assert await card.get_by_role("checkbox", name="X").is_checked()
    assert not await card.get_by_role("checkbox", name="Y").is_checked()
    assert await card.locator("input[type=date]").input_value() == "2026-11-25"
    assert await card.locator("input[type=time]").input_value() == "09:30"
    summary = card.locator("textarea.z-input-box")
    assert await summary.get_attribute("placeholder") == "what happened"
    assert await summary.get_attribute("maxlength") == "200"
    section = card.locator(".z-section-bar")
    assert await section.evaluate("e => getComputedStyle(e).borderLeftColor") == "rgb(45, 140, 255)"
    assert "PagerDuty" in await section.locator(".z-footer").inner_text()
    assert await section.locator(".z-footer-ts").inner_text() != ""
    pages = card.locator(".z-pages")
    assert "first page" in await pages.inner_text()
    await pages.get_by_role("button", name="Next page").click()
    assert "second page" in await pages.inner_text()
    assert "Page 2 of 2" in await pages.inner_text()
    assert "hologram" in await card.locator(".z-unknown").inner_text()


async def test_markdown_is_drawn_and_html_stays_text(page, console):
    text = (
        "*bold* _italic_ ~gone~ `code` <https://zoom.us|Zoom> [docs](https://example.com/d) "
        '<img src=x onerror="window.pwned=1"> [evil](javascript:alert(1))\n'
        "> quoted\n```\nblock <script>window.pwned=2</script>\n```"
    )
    await post_to_zoom(
        console, {"body": [{"type": "message", "text": text}]}, is_markdown_support=True
    )
    md = page.locator(".msg-bot .md")
    await md.wait_for()
    assert await md.locator("strong").inner_text() == "bold"
    assert await md.locator("em").inner_text() == "italic"
    assert await md.locator("s").inner_text() == "gone"
    assert await md.locator("code").inner_text() == "code"
    assert await md.locator("a", has_text="Zoom").get_attribute("href") == "https://zoom.us/"
    assert await md.locator("a", has_text="docs").get_attribute("href") == "https://example.com/d"
    assert await md.locator("blockquote").inner_text() == "quoted"
    assert "<script>" in await md.locator("pre").inner_text()
    assert await md.locator("img, script").count() == 0
    assert await md.locator("a", has_text="evil").count() == 0
    assert '<img src=x onerror="window.pwned=1">' in await md.inner_text()
    assert await page.evaluate("window.pwned") is None


async def test_threads_edits_and_deletes_are_applied_live(page, console):
    await _say(page, "progress")
    done = page.locator(".msg-bot", has=page.locator(".z-head", has_text="Done"))
    await done.wait_for()
    # The reply sits in the first message's thread; the scratch message is gone.
    await done.locator(".thread .msg-bot", has_text="in thread").wait_for()
    await page.locator(".msg-bot", has_text="scratch").wait_for(state="detached")
    assert await page.locator(".msg-bot", has_text="working...").count() == 0
    assert "(edited)" in await done.locator(".msg-meta").first.inner_text()


async def test_a_direct_message_is_only_in_that_persons_chat(page, console):
    await page.get_by_role("button", name="opsbot", exact=True).click()
    await _say(page, "whisper")
    await page.locator(".msg-bot", has_text="only you, Alice").wait_for()
    await _act_as(page, "bob")
    await page.locator(".empty").wait_for()
    assert await page.locator(".msg-bot").count() == 0


async def test_a_dropdown_and_an_editable_field(page, console):
    await _say(page, "palette")
    card = page.locator(".msg-bot", has=page.locator(".z-head", has_text="Palette"))
    await card.wait_for()
    await card.get_by_label("Colour").select_option(label="Red")
    await page.locator(".msg-bot", has_text="Alice picked red").wait_for()
    await _act_as(page, "bob")
    team = card.get_by_role("textbox", name="Team")
    await team.fill("infra")
    await team.press("Enter")
    await page.locator(".msg-bot", has_text="Team: ops -> infra").wait_for()
    assert await card.get_by_role("textbox", name="Team").input_value() == "infra"


async def test_an_editable_message_is_edited_in_place(page, console):
    await post_to_zoom(
        console, {"body": [{"type": "message", "text": "Standup at 10", "editable": True}]}
    )
    text = page.locator(".z-editable", has_text="Standup at 10")
    await text.click()
    box = page.get_by_role("textbox", name="Edit message")
    await box.fill("Standup at 11")
    await box.press("Enter")
    entry = page.locator(".entry-webhook", has_text="interactive_message_editable")
    await entry.wait_for()
    assert await entry.locator(".entry-status").inner_text() == "200"


async def test_a_message_elsewhere_is_counted_as_unread(page, console):
    await post_to_zoom(console, {"head": {"text": "Elsewhere"}}, channel_jid("random"))
    random = page.get_by_role("button", name="#random")
    await random.locator(".unread", has_text="1").wait_for()
    assert await page.locator(".msg-bot").count() == 0
    await random.click()
    await page.locator(".msg-bot", has_text="Elsewhere").wait_for()
    assert await page.locator(".unread").count() == 0
