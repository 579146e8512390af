"""The pages in a real headless Chromium: chatting, escaping, catch-up, the wire view.

Screenshots of the chat and the wire view are saved in test-artifacts/.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from services import ChatServer

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeError(
        "Chromium is not installed: run the test command from README.md, which installs "
        "Debian's chromium package."
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _join(browser: Browser, server: ChatServer, name: str, width: int = 1200) -> Page:
    context = browser.new_context(viewport={"width": width, "height": 800})
    page = context.new_page()
    # An alert() from injected markup would open a dialog: that fails the test.
    page.on("dialog", lambda dialog: pytest.fail(f"a dialog opened: {dialog.message}"))
    page.goto(server.url + "/")
    page.get_by_label("Your name").fill(name)
    page.get_by_role("button", name="Join").click()
    expect(page.locator("#status")).to_have_text("connected")
    return page


def _say(page: Page, text: str) -> None:
    page.get_by_label("Your message").fill(text)
    page.get_by_label("Your message").press("Enter")
    expect(page.get_by_label("Your message")).to_have_value("")


def _texts(page: Page) -> list[str]:
    return page.locator("#messages .message .text").all_text_contents()


def test_two_people_chat(browser: Browser, start_server, unique) -> None:
    server = start_server("memory")
    ana_name, bo_name = unique("Ana"), unique("Bo")
    ana = _join(browser, server, ana_name)
    bo = _join(browser, server, bo_name)
    _say(ana, "Hello from Ana")
    expect(bo.locator("#messages")).to_contain_text("Hello from Ana")
    _say(bo, "Hi Ana!")
    expect(ana.locator("#messages")).to_contain_text("Hi Ana!")
    # Presence: each sees the other online, and can write privately.
    expect(ana.locator("#online")).to_contain_text(bo_name)
    ana.locator("#online").get_by_role("button", name=bo_name).click()
    expect(ana.locator("#title")).to_have_text(f"@{bo_name}")
    _say(ana, "just between us")
    conversation = bo.locator("#dms").get_by_role("button", name=f"@{ana_name}")
    expect(conversation).to_contain_text("1")  # an unread marker
    conversation.click()
    expect(bo.locator("#messages")).to_contain_text("just between us")
    expect(bo.locator("#dms .unread")).to_have_count(0)
    # A room, created by Bo, appears for Ana with its own unread count.
    bo.get_by_label("New room").fill("maths")
    bo.get_by_role("button", name="Create").click()
    expect(bo.locator("#title")).to_have_text("#maths")
    _say(bo, "first in maths")
    expect(ana.locator("#rooms")).to_contain_text("#maths")
    expect(ana.locator("#rooms .unread")).to_have_text("1")
    ARTIFACTS.mkdir(exist_ok=True)
    ana.locator("#rooms").get_by_role("button", name="#general").click()
    ana.screenshot(path=str(ARTIFACTS / "chat.png"))
    phone = _join(browser, server, unique("Phone"), width=390)
    expect(phone.locator("#messages")).to_contain_text("Hi Ana!")
    phone.screenshot(path=str(ARTIFACTS / "chat-phone.png"))


def test_markup_is_shown_as_text(browser: Browser, start_server, unique) -> None:
    server = start_server("memory")
    evil_name = "<img src=x onerror=alert(1)>"
    evil_text = "<script>alert('x')</script><b>bold?</b> & <a href=javascript:alert(1)>link</a>"
    writer = _join(browser, server, evil_name)
    reader = _join(browser, server, unique("Reader"))
    _say(writer, evil_text)
    expect(reader.locator("#messages .text").last).to_have_text(evil_text)
    expect(reader.locator("#messages .author").last).to_have_text(evil_name)
    expect(reader.locator("#online")).to_contain_text(evil_name)
    for page in (writer, reader):
        injected = page.locator("#messages img, #messages script, #messages b, #messages a")
        assert injected.count() == 0
        assert page.locator("#online img").count() == 0


def test_a_restart_shows_missed_messages_exactly_once(browser: Browser, start_server, unique):
    server = start_server("memory")
    page = _join(browser, server, unique("Stay"))
    poster = server.visitor(unique("poster"))
    poster.say("before the restart")
    expect(page.locator("#messages")).to_contain_text("before the restart")
    server.stop()
    expect(page.locator("#status")).not_to_have_text("connected")
    server.start()
    missed = [poster.say(f"missed {i}")["text"] for i in range(5)]
    expect(page.locator("#messages")).to_contain_text("missed 4", timeout=20_000)
    expect(page.locator("#status")).to_have_text("connected")
    poster.say("live again")
    expect(page.locator("#messages")).to_contain_text("live again")
    texts = _texts(page)
    assert texts == ["before the restart", *missed, "live again"]


def test_errors_show_inline(browser: Browser, start_server, unique) -> None:
    server = start_server("memory", env={"CHATROOM_RATE_LIMIT": "2/30"})
    page = _join(browser, server, unique("Fast"))
    _say(page, "one")
    _say(page, "two")
    page.get_by_label("Your message").fill("three")
    page.get_by_label("Your message").press("Enter")
    expect(page.locator("#error")).to_contain_text("Slow down")
    expect(page.get_by_label("Your message")).to_have_value("three")  # kept, not lost


def test_the_name_picker_says_when_a_name_is_taken(browser: Browser, start_server, unique):
    server = start_server("memory")
    name = unique("Taken")
    _join(browser, server, name)
    page = browser.new_context().new_page()
    page.goto(server.url + "/")
    page.get_by_label("Your name").fill(name)
    page.get_by_role("button", name="Join").click()
    expect(page.locator(".error")).to_contain_text("in use")


def test_the_wire_view_shows_frames_and_replays(browser: Browser, start_server, unique) -> None:
    server = start_server("memory")
    poster = server.visitor(unique("wire"))
    page = browser.new_context(viewport={"width": 1300, "height": 900}).new_page()
    page.goto(server.url + "/inspect")
    expect(page.locator("#wire-status")).to_have_text("connected")
    expect(page.locator("#raw")).to_contain_text("retry: 2000")
    first = poster.say("seen live")
    expect(page.locator("#raw .f-event")).to_contain_text(["event: message"])
    expect(page.locator("#raw .f-id").last).to_contain_text(re.compile(rf"id: \w+-{first['id']}\b"))
    expect(page.locator("#parsed li").first).to_contain_text("seen live")
    page.get_by_role("button", name="Drop connection").click()
    expect(page.locator("#wire-status")).to_have_text("dropped")
    poster.say("missed while dropped")
    expect(page.get_by_label("Last-Event-ID")).to_have_value(re.compile(rf"^\w+-{first['id']}$"))
    page.get_by_role("button", name="Connect", exact=True).click()
    expect(page.locator("#parsed li").first).to_contain_text("missed while dropped")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "wire-view.png"))


def test_the_stats_page_updates(browser: Browser, start_server, unique) -> None:
    server = start_server("memory")
    page = browser.new_context().new_page()
    page.goto(server.url + "/stats")
    expect(page.locator("#broker")).to_contain_text("in-process")
    with server.stream():
        expect(page.locator("#listeners")).to_have_text("1", timeout=5000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "stats.png"))


def test_tabs_of_one_browser_share_one_stream(browser: Browser, start_server, unique) -> None:
    server = start_server("memory")
    first = _join(browser, server, unique("Tabs"))
    streams: list[str] = []
    first.context.on("request", lambda r: streams.append(r.url) if "/stream" in r.url else None)
    second = first.context.new_page()
    second.goto(server.url + "/")
    expect(second.locator("#status")).to_have_text("connected")
    poster = server.visitor(unique("poster"))
    poster.say("to both tabs")
    expect(first.locator("#messages")).to_contain_text("to both tabs")
    expect(second.locator("#messages")).to_contain_text("to both tabs")
    assert streams == []  # the second tab opened no stream of its own
    first.close()  # the tab that streamed goes: the other takes over and catches up
    poster.say("after the first tab closed")
    expect(second.locator("#messages")).to_contain_text("after the first tab closed")
    assert second.locator("#messages .text").all_text_contents().count("to both tabs") == 1


def test_the_page_stays_live_with_as_many_rooms_as_allowed(browser: Browser, start_server, unique):
    server = start_server("memory")  # CHATROOM_MAX_ROOMS: 50, general included
    maker = server.visitor(unique("many"))
    rooms = [unique("r") for _ in range(49)]
    for room in rooms:
        assert maker.create_room(room).status_code == 201
    assert maker.create_room(unique("r")).json()["code"] == "too_many_rooms"
    page = _join(browser, server, unique("Reader"))
    maker.say("in the last room", room=rooms[-1])
    expect(page.locator("#rooms")).to_contain_text(f"#{rooms[-1]}")
    expect(page.locator("#rooms .unread")).to_have_text("1")
    expect(page.locator("#status")).to_have_text("connected")


def test_the_host_runs_a_lesson(browser: Browser, start_server, unique) -> None:
    server = start_server("memory", env={"CHATROOM_HOST_TOKEN": "lesson-token"})
    teacher = browser.new_context(viewport={"width": 1200, "height": 800}).new_page()
    teacher.goto(server.url + "/host?token=lesson-token")
    expect(teacher).to_have_url(server.url + "/")  # the token is gone from the address bar
    teacher.get_by_label("Your name").fill(unique("Teacher"))
    teacher.get_by_role("button", name="Join").click()
    expect(teacher.locator("#status")).to_have_text("connected")
    student_name = unique("Student")
    student = _join(browser, server, student_name)
    # Students see none of the host's controls.
    expect(student.locator("#host-panel")).to_have_count(0)
    _say(student, "something rude")
    expect(teacher.locator("#messages")).to_contain_text("something rude")
    teacher.get_by_role("button", name=f"Delete message from {student_name}").click()
    expect(student.locator("#messages")).not_to_contain_text("something rude")
    expect(teacher.locator("#messages")).not_to_contain_text("something rude")
    # An announcement channel: the student sees why they cannot post.
    teacher.get_by_label("Read-only (only you post)").check()
    expect(student.locator("#box-state")).to_contain_text("read-only")
    expect(student.get_by_label("Your message")).to_be_disabled()
    _say(teacher, "Listen up, everyone")
    expect(student.locator("#messages .host-badge")).to_have_count(1)
    ARTIFACTS.mkdir(exist_ok=True)
    student.screenshot(path=str(ARTIFACTS / "student-read-only.png"))
    teacher.screenshot(path=str(ARTIFACTS / "host-controls.png"))
    teacher.get_by_label("Read-only (only you post)").uncheck()
    expect(student.get_by_label("Your message")).to_be_enabled()
    # Muted: said at the message box.
    teacher.get_by_role("button", name=f"Mute 10 min {student_name}").click()
    expect(student.locator("#box-state")).to_contain_text("muted")
    phone = browser.new_context(viewport={"width": 390, "height": 800}).new_page()
    phone.goto(server.url + "/")
    phone.screenshot(path=str(ARTIFACTS / "host-phone-login.png"))


def test_a_selection_survives_incoming_messages(browser: Browser, start_server, unique) -> None:
    server = start_server("memory")
    poster = server.visitor(unique("talker"))
    poster.say("select this sentence, please")
    page = _join(browser, server, unique("Reader"))
    expect(page.locator("#messages")).to_contain_text("select this sentence")
    page.evaluate("""() => {
        const text = document.querySelector('#messages .message .text');
        const range = document.createRange();
        range.selectNodeContents(text);
        getSelection().removeAllRanges();
        getSelection().addRange(range);
    }""")
    general = page.locator("#rooms").get_by_role("button", name="#general")
    for i in range(20):
        poster.say(f"incoming {i}")
    expect(page.locator("#messages .message")).to_have_count(21)
    assert page.evaluate("getSelection().toString()") == "select this sentence, please"
    # Focus on a room's button survives too.
    general.focus()
    poster.say("one more")
    expect(page.locator("#messages .message")).to_have_count(22)
    assert page.evaluate("document.activeElement.textContent").startswith("#general")


def test_links_and_code_safely(browser: Browser, start_server, unique) -> None:
    server = start_server("memory")
    writer = server.visitor(unique("coder"))
    page = _join(browser, server, unique("Reader"))
    hostile = ("see https://example.org/a?b=1, javascript:alert(1) data:text/html,<b>x</b> "
               "<a href='https://evil.example'>x</a> `print('hi')`")
    writer.say(hostile)
    writer.say("```python\ndef f():\n    return '<script>'\n```")
    expect(page.locator("#messages .message")).to_have_count(2)
    links = page.locator("#messages a")
    expect(links).to_have_count(2)  # only the two http(s) addresses, as written
    hrefs = [links.nth(i).get_attribute("href") for i in range(2)]
    assert hrefs == ["https://example.org/a?b=1", "https://evil.example/"]
    for i in range(2):
        assert links.nth(i).get_attribute("rel") == "noopener noreferrer"
    expect(page.locator("#messages .text code").first).to_have_text("print('hi')")
    block = page.locator("#messages pre code")
    expect(block).to_have_text("def f():\n    return '<script>'")
    assert page.locator("#messages script, #messages b, #messages img").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "code-block.png"))


def test_unread_in_the_title_mentions_and_a_favicon(browser: Browser, start_server, unique):
    server = start_server("memory")
    reader_name = unique("Reader")
    poster = server.visitor(unique("poster"))
    page = _join(browser, server, reader_name)
    assert page.request.get(server.url + "/favicon.ico").ok
    expect(page).to_have_title("#general — chatroom")
    # The tab goes to the background.
    page.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    for i in range(3):
        poster.say(f"while away {i}")
    expect(page).to_have_title("(3) #general — chatroom")
    icon = page.locator("#favicon").get_attribute("href")
    assert icon.startswith("data:image/png")
    # A page screenshot has no tab strip: show the tab's icon and title in the page for it.
    page.evaluate("""() => {
        const tab = document.createElement('div');
        tab.id = 'tab-preview';
        tab.style.cssText = 'position:fixed;top:0;left:40%;padding:6px 12px;background:#dee1e6;'
            + 'border-radius:8px 8px 0 0;display:flex;gap:8px;align-items:center;z-index:9';
        const img = document.createElement('img');
        img.src = document.getElementById('favicon').href;
        img.width = img.height = 16;
        tab.append(img, document.title);
        document.body.append(tab);
    }""")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "title-badge.png"))
    page.evaluate("document.getElementById('tab-preview').remove()")
    poster.say(f"hey @{reader_name.upper()}, look")
    expect(page.locator("#messages .message.mention")).to_have_count(1)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "mention.png"))
    page.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    expect(page).to_have_title("#general — chatroom")
    # In another room, a mention counts on its own.
    side = unique("side")
    poster.create_room(side)
    expect(page.locator("#rooms")).to_contain_text(f"#{side}")
    poster.say("plain", room=side)
    poster.say(f"@{reader_name} here", room=side)
    badge = page.locator("#rooms .unread.mentioned")
    expect(badge).to_have_text("@2")
    # Returning to a room: a divider before what is new.
    page.locator("#rooms").get_by_role("button", name=f"#{side}").click()
    expect(page.locator("#rooms .unread")).to_have_count(0)
    poster.say("after you left")
    expect(page.locator("#rooms .unread")).to_have_text("1")
    page.locator("#rooms").get_by_role("button", name="#general").click()
    expect(page.locator("#messages .divider")).to_have_count(1)
    expect(page.locator("#messages li").last).to_contain_text("after you left")
    expect(page.locator("#messages .divider + .message")).to_contain_text("after you left")


def test_sound_is_off_until_switched_on_and_remembered(browser: Browser, start_server, unique):
    server = start_server("memory")
    page = _join(browser, server, unique("Ears"))
    sound = page.get_by_label("Sound")
    expect(sound).not_to_be_checked()
    sound.check()
    page.reload()
    expect(page.get_by_label("Sound")).to_be_checked()


def test_an_input_method_enter_never_sends(browser: Browser, start_server, unique) -> None:
    server = start_server("memory")
    page = _join(browser, server, unique("IME"))
    box = page.get_by_label("Your message")
    box.fill("你好")
    for init in ["{key: 'Enter', isComposing: true, bubbles: true, cancelable: true}",
                 "{key: 'Enter', keyCode: 229, bubbles: true, cancelable: true}"]:
        page.evaluate(f"""() => document.getElementById('text').dispatchEvent(
            new KeyboardEvent('keydown', {init}))""")
    page.wait_for_timeout(300)  # a send would have cleared the box by now
    expect(box).to_have_value("你好")
    assert page.locator("#messages .message").count() == 0
    box.press("Enter")
    expect(page.locator("#messages .message")).to_have_count(1)


def test_the_phone_view_keeps_the_room_name(browser: Browser, start_server, unique) -> None:
    server = start_server("memory")
    page = _join(browser, server, unique("Phone"), width=390)
    title = page.locator("#title")
    expect(title).to_have_text("#general")
    assert page.evaluate("(el) => el.scrollWidth <= el.clientWidth", title.element_handle())
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "phone.png"))


def test_the_page_in_chinese_and_the_switch(browser: Browser, start_server, unique) -> None:
    server = start_server("memory", env={"CHATROOM_RATE_LIMIT": "1/30"})
    context = browser.new_context(locale="zh-CN", viewport={"width": 1200, "height": 800})
    page = context.new_page()
    page.goto(server.url + "/")
    expect(page.locator("html")).to_have_attribute("lang", "zh-Hans")
    page.get_by_label("你的名字").fill(unique("王小明"))
    page.get_by_role("button", name="加入").click()
    expect(page.locator("#status")).to_have_text("已连接")
    page.get_by_label("你的消息").fill("大家好")
    page.get_by_label("你的消息").press("Enter")
    expect(page.locator("#messages")).to_contain_text("大家好")
    # An error from the API is worded from its code: no English sentence.
    page.get_by_label("你的消息").fill("再来一条")
    page.get_by_label("你的消息").press("Enter")
    expect(page.locator("#error")).to_contain_text("慢一点")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat-zh-Hans.png"))
    page.get_by_role("button", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#status")).to_have_text("connected")
    page.screenshot(path=str(ARTIFACTS / "chat-en.png"))
    page.goto(server.url + "/inspect")
    expect(page.locator("h1")).to_have_text("The wire view")  # the choice is kept
    page.get_by_role("button", name="简体中文").click()
    expect(page.locator("h1")).to_have_text("线路视图")
    page.screenshot(path=str(ARTIFACTS / "wire-view-zh-Hans.png"))


def test_a_message_sent_while_redis_is_away_arrives_once(
    browser: Browser, start_server, own_redis, unique
) -> None:
    server = start_server("redis", redis=own_redis)
    page = _join(browser, server, unique("Patient"))
    own_redis.kill()  # open streams stay connected; posts get a 503
    page.get_by_label("Your message").fill("during the outage")
    page.get_by_label("Your message").press("Enter")
    expect(page.locator("#error")).to_have_text("Not sent yet: trying again…")
    own_redis.start()
    expect(page.get_by_label("Your message")).to_have_value("", timeout=20_000)
    expect(page.locator("#error")).to_have_text("")
    expect(page.locator("#status")).to_have_text("connected", timeout=15_000)
    # The stream may bring it a moment after the status settles: wait for it, then
    # check again after the history call that no second copy followed.
    expect(page.locator("#messages .message .text")).to_have_text(["during the outage"])
    assert [m["text"] for m in server.visitor(unique("reader")).history()] == \
        ["during the outage"]
    assert _texts(page) == ["during the outage"]


def test_a_send_whose_answer_was_lost_is_not_posted_twice(
    browser: Browser, start_server, unique
) -> None:
    # The server stores the message but the answer never reaches the page (a Wi-Fi
    # drop): the page sends it again with the same key and gets the same message back.
    server = start_server("memory")
    page = _join(browser, server, unique("Unlucky"))
    keys: list[str] = []

    def lose_first_answer(route) -> None:
        keys.append(route.request.headers.get("idempotency-key", ""))
        answer = route.fetch()  # the real server handles it
        if len(keys) == 1:
            assert answer.status == 201
            route.abort("connectionreset")
        else:
            route.fulfill(response=answer)

    page.route("**/api/rooms/general/messages", lose_first_answer)
    _say(page, "just once")
    assert len(keys) == 2 and keys[0] == keys[1] and len(keys[0]) == 32
    expect(page.locator("#messages")).to_contain_text("just once")
    assert _texts(page) == ["just once"]
    history = server.visitor(unique("reader")).history()
    assert [m["text"] for m in history] == ["just once"]
