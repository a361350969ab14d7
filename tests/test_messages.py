"""The message catalogue: every code the sources raise has Chinese and English text with the same placeholders; the
error bodies carry the code and the fields the text needs; a page shows the Chinese text."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from api import errors as api_errors
from spatial import errors
from spatial.messages import MESSAGES, placeholders, render
from spatial.store import users
from tests import factories
from tests.conftest import open_logged_in

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [p for folder in ("spatial", "api", "tiles", "gridgov") for p in (ROOT / folder).rglob("*.py")]
CJK = re.compile(r"[\u4e00-\u9fff]")
PASSWORD = "correct horse battery"


def _codes_in_sources() -> dict[str, str]:
    """code → where: every ``code="..."`` keyword of a call to an error class, and every dotted literal of a
    namespace the catalogue knows (a report's ``problem_codes``)."""
    kinds = {name for name, value in vars(errors).items() if isinstance(value, type)
             and issubclass(value, errors.GridgovError)}
    spaces = {code.split(".")[0] for code in MESSAGES if "." in code}
    found = {}
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                for kw in node.keywords:
                    if name in kinds and kw.arg == "code":
                        assert isinstance(kw.value, ast.Constant), f"{path}:{node.lineno}: a code must be a literal"
                        found[kw.value.value] = f"{path.relative_to(ROOT)}:{node.lineno}"
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and re.fullmatch(r"[a-z_]+\.[a-z_]+", node.value) and node.value.split(".")[0] in spaces:
                found.setdefault(node.value, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_every_code_raised_has_chinese_and_english_text():
    found = _codes_in_sources()
    assert {"scope.outside_area", "coverage.threshold_range", "plan.overlaps"} <= set(found)  # the scan works
    missing = {code: where for code, where in found.items() if code not in MESSAGES}
    assert not missing, f"codes without a text in spatial/messages.py: {missing}"


def _subclasses(cls: type) -> set[type]:
    return {cls} | {s for sub in cls.__subclasses__() for s in _subclasses(sub)}


def test_every_kind_an_answer_can_carry_has_text():
    for path in SOURCES:  # every module, so that every error class is defined
        if path.name != "__main__.py" and "migrations" not in path.parts:
            importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"))

    kinds = {api_errors.KIND_SHOWN.get(cls, cls.__name__) for cls in _subclasses(errors.GridgovError) - {errors.GridgovError}}
    kinds |= set(api_errors._HTTP_KINDS.values()) | {"InternalError", "HTTPError", "network"}
    assert kinds - set(MESSAGES) == set()


@pytest.mark.parametrize("code", sorted(MESSAGES))
def test_each_text_is_chinese_first_with_the_same_placeholders_in_english(code):
    zh, en = MESSAGES[code]
    assert CJK.search(zh), f"{code}: no Chinese text"
    assert en.strip() and not CJK.search(en), f"{code}: the English text is missing or not English"
    assert placeholders(zh) == placeholders(en), code


def test_the_store_refuses_a_threshold_with_its_code_and_fields():
    from spatial.store.coverage import check_threshold

    with pytest.raises(errors.InvalidInput) as refused:
        check_threshold(5.0)
    assert refused.value.code == "coverage.threshold_range"
    assert render(refused.value.code, refused.value.detail) == "距离阈值须在 10 到 5000 米之间，当前为 5。"


def test_render_fills_placeholders_and_refuses_missing_fields():
    assert render("coverage.threshold_range", {"min_m": 10, "max_m": 5000, "got": 5}) == "距离阈值须在 10 到 5000 米之间，当前为 5。"
    assert render("coverage.threshold_range", {"min_m": 10}) is None   # the page shows the English detail then
    assert render("no.such_code", {}) is None


def test_error_bodies_carry_the_code_and_its_fields(app_env):
    client, sessions = app_env
    with sessions.begin() as s:
        factories.two_grids(s)
        users.create_user(s, "insp1", PASSWORD, "inspector", scope_code=factories.SUBDISTRICT)
    token = client.post("/api/auth/token", data={"username": "insp1", "password": PASSWORD}).json()["access_token"]
    auth = {"Authorization": "Bearer " + token}
    body = client.get("/api/inspection/coverage?threshold_m=5", headers=auth).json()   # refused by the parameter
    assert (body["code"], body["field"], body["ge"]) == ("validation.greater_than_equal", "threshold_m", "10")
    assert render(body["code"], body) == "threshold_m 须不小于 10。"
    body = client.post("/api/risk-zones", headers=auth, json={"level": "red"}).json()  # no target_kind
    assert body["code"] == "validation.missing" and render(body["code"], body).startswith("缺少必填项")
    unknown = client.get("/api/inspection/enclosures/999999/none", headers=auth).json()
    assert unknown["code"] == unknown["error"] == "NotFound"                 # kinds are their own code
    catalogue = client.get("/api/messages").json()                             # public, like the vocabularies
    assert catalogue["coverage.threshold_range"]["zh"].startswith("距离阈值")
    declared = client.get("/openapi.json").json()["paths"]["/api/inspection/coverage"]["get"]["responses"]["4XX"]
    assert "code" in declared["content"]["application/json"]["schema"]["required"]


@pytest.mark.browser
def test_the_inspector_page_says_the_refusal_in_chinese_then_in_english(live_server, browser):
    base, sessions = live_server
    with sessions.begin() as s:
        factories.two_grids(s)
        users.create_user(s, "insp1", PASSWORD, "inspector", scope_code=factories.SUBDISTRICT)
    context, page, errors_seen = open_logged_in(browser, base + "/inspector", "insp1", PASSWORD)
    page.evaluate("document.getElementById('threshold').removeAttribute('min')")
    page.fill("#threshold", "5")
    page.click("#refresh")
    page.wait_for_function("() => document.getElementById('message').textContent.includes('须不小于')")
    assert page.locator("#message").inner_text() == "threshold_m 须不小于 10。"
    context.set_offline(True)                                                  # no answer at all: not "Failed to fetch"
    offline = page.evaluate("() => gridgov.api('/api/health').catch((e) => [e.status, e.message])")
    assert offline == [0, "网络不可用或服务器无响应，请检查网络后重试。"]
    context.set_offline(False)
    english = page.evaluate("() => { gridgov.state.lang = 'en'; return gridgov.say({code: 'coverage.threshold_range',"
                            " min_m: 10, max_m: 5000, got: '5', detail: 'x'}); }")
    assert english == "The distance threshold must be between 10 and 5000 m, got 5."
    context.close()
    assert not errors_seen, errors_seen
