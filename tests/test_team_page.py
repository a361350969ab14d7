"""The team page and the field page's tasks panel in a real headless Chromium (issue 17 §1): a planner reads a grid's
team and the checks, assigns a building head from the page and sees the check clear; a grid worker hands a task to a
volunteer from the field page's visit sheet; the volunteer marks a task handed to them done on the field page."""

from __future__ import annotations

from datetime import date, timedelta

import httpx
import pytest

from spatial.store import users
from tests.conftest import open_logged_in
from tests.test_team import EAST, PASSWORD, build, make_team

pytestmark = pytest.mark.browser


def test_the_team_page_and_the_tasks_panel(live_server, browser, tmp_path):
    base, sessions = live_server
    headers, ids = build(sessions, users.hash_password(PASSWORD))
    with httpx.Client(base_url=base) as client:
        make_team(client, headers, ids)
        task = client.post("/api/tasks", headers=headers["worker_w1"], json={
            "kind": "care_visit", "assignee": "vol1", "due": (date.today() + timedelta(days=1)).isoformat(),
            "household_id": ids["h0"][0], "note": "每周二探访"})
        assert task.status_code == 201, task.text
    context, page, errors = open_logged_in(browser, base + "/team", "planner1", PASSWORD, locale="zh-CN")
    try:
        assert page.locator("header").inner_text().startswith("网格团队")
        assert page.locator("body").get_attribute("data-checked") == "2"
        page.wait_for_selector("body[data-members='7']")
        rows = page.locator("#members tbody tr")
        assert "网格长" in rows.first.inner_text() and "13900000001" in rows.first.inner_text()
        assert "网格警员" in page.locator("#members").inner_text()
        assert EAST in page.locator("#check-short").inner_text() and EAST in page.locator("#check-leader").inner_text()
        assert "微网格 2" in page.locator("#check-head").inner_text()
        # assign a building head to micro-grid 2 from the form: the check clears
        page.fill("#assign-user", "head1")
        page.select_option("#assign-duty", "building_head")
        page.select_option("#assign-kind", "micro_grid")
        page.fill("#assign-target", "2")
        page.click("#assign button[type=submit]")
        page.wait_for_selector("body[data-members='8']")
        assert page.locator("#check-head li.ok").count() == 1
        assert page.locator("#micro li[data-seq='2']").inner_text().count("head1") == 1
        page.click("#lang")
        page.wait_for_function("() => document.querySelector('#members').innerText.includes('Grid leader')")
        assert "Micro-grids without a building head" in page.locator("#checks").inner_text()
        page.screenshot(path=str(tmp_path / "team.png"))
    finally:
        context.close()
    assert not errors, errors
    # a grid worker hands a delivery for the household open in the visit sheet to the volunteer
    context, page, errors = open_logged_in(browser, base + "/field/", "worker_w1", PASSWORD, locale="zh-CN")
    try:
        page.wait_for_selector("#tasks[data-tasks='0']")
        page.wait_for_function("() => document.querySelectorAll('#task-team option').length >= 7")
        page.evaluate("(id) => { const v = document.getElementById('visit'); v.dataset.household = id; v.hidden = false; }",
                      ids["h1"][0])  # as field.js's openVisit does (the nearby list is tested in test_field_page)
        page.click("#task-new summary")
        page.select_option("#task-kind", "isolation_delivery")
        page.fill("#task-assignee", "vol1")
        page.fill("#task-note", "门口放置")
        page.click("#task-send")
        page.wait_for_function("() => document.getElementById('task-sent').textContent.includes('vol1')")
        assert "已派发" in page.locator("#task-sent").inner_text()
    finally:
        context.close()
    assert not errors, errors
    context, page, errors = open_logged_in(browser, base + "/field/", "vol1", PASSWORD, locale="zh-CN")
    try:
        page.wait_for_selector("#tasks[data-tasks='2'][data-open='2']")
        assert page.locator("#task-new").is_hidden()  # volunteers hand out nothing
        text = page.locator("#tasks").inner_text()
        assert "独居老人关爱探访" in text and "居家隔离送物资" in text and "张*" in text and "每周二探访" in text
        assert "张三丰" not in text
        page.click("#tasks li[data-id='%d'] button.task-mark" % task.json()["id"])
        page.wait_for_selector("#tasks[data-open='1']")
        assert "已完成" in page.locator("#tasks").inner_text()
        page.locator("#tasks").screenshot(path=str(tmp_path / "tasks.png"))
    finally:
        context.close()
    assert not errors, errors
