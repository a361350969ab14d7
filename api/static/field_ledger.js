// The field page's ledger editor (更正 / Correct, 动态更新): from the household sheet, the residents of the
// household (GET /api/field/households/{id}, masked, audited) with their corrections: a new resident, one moved
// out, a new phone, the unit / floor / room. Every change is sent with If-Match (the sheet's ETag): a 412 means
// someone changed the household meanwhile, so the sheet is loaded again and says so. After a change the page's
// list is refreshed (event "gridgov:ledger-changed", heard by field.js).
// Kept apart from field.js; registered with gridgov.part() before field.js calls gridgov.setup().
"use strict";
(() => {
  const LABELS = {
    zh: { ledger_open: "更正", ledger_title: "更正住户信息", ledger_add: "添加住户（新入住）", ledger_name: "姓名",
          ledger_id: "身份证号", ledger_phone: "联系电话", ledger_relation: "与户主关系", ledger_kind: "人员类型",
          ledger_add_save: "添加", ledger_room: "更正房号", ledger_unit: "单元", ledger_floor: "楼层",
          ledger_room_no: "房号", ledger_room_save: "保存房号", ledger_save_phone: "保存电话",
          ledger_confirm_out: "确认迁出", ledger_change_phone: "改电话", ledger_move_out: "迁出",
          ledger_new_phone: "新电话：", ledger_out_date: "迁出日期：", ledger_saved: "已保存",
          ledger_stale: "已被他人修改，已重新载入", ledger_residents: "人", ledger_version: "版本",
          ledger_no_phone: "无电话", ledger_none: "本户暂无登记人员", ledger_need: "请填写姓名和身份证号",
          ledger_moved_in: "迁入", close_sheet: "关闭" },
    en: { ledger_open: "Correct", ledger_title: "Correct the household", ledger_add: "Add a resident (moved in)",
          ledger_name: "Name", ledger_id: "ID number", ledger_phone: "Phone", ledger_relation: "Relation to the head",
          ledger_kind: "Resident type", ledger_add_save: "Add", ledger_room: "Correct the room", ledger_unit: "Unit",
          ledger_floor: "Floor", ledger_room_no: "Room", ledger_room_save: "Save the room",
          ledger_save_phone: "Save the phone", ledger_confirm_out: "Confirm moved out",
          ledger_change_phone: "New phone", ledger_move_out: "Moved out", ledger_new_phone: "New phone for ",
          ledger_out_date: "Moved out on, ", ledger_saved: "Saved",
          ledger_stale: "Someone else changed this household: it was reloaded", ledger_residents: "residents",
          ledger_version: "version", ledger_no_phone: "no phone", ledger_none: "Nobody registered in this household",
          ledger_need: "Give the name and the ID number", ledger_moved_in: "moved in", close_sheet: "Close" },
  };
  const { t, esc, api, request } = gridgov;
  const $ = (id) => document.getElementById(id);
  const state = { id: null, etag: null, sheet: null, person: null, vocab: null };
  function say(text, error = false) {
    $("ledger-message").textContent = text;
    $("ledger-message").className = error ? "error" : "";
  }
  const today = () => new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Shanghai" }).format(new Date());
  const name = (entry) => (entry ? entry[gridgov.state.lang] : "");

  function options(table, chosen) {
    return Object.entries(table).map(([code, l]) =>
      `<option value="${esc(code)}"${code === chosen ? " selected" : ""}>${esc(name(l))}</option>`).join("");
  }

  function render(sheet) {
    state.sheet = sheet;
    const form = $("ledger");
    Object.assign(form.dataset, { household: sheet.id, version: sheet.version, residents: sheet.residents });
    $("ledger-where").textContent = `${sheet.building_name || sheet.building_code || "#" + sheet.building_id} · ` +
      `${sheet.unit}${t("unit")} ${sheet.room} · ${sheet.residents} ${t("ledger_residents")} · ` +
      `${t("ledger_version")} ${sheet.version}`;
    $("ledger-persons").innerHTML = sheet.persons.length ? sheet.persons.map((p) =>
      `<li data-person="${p.id}"><span><b>${esc(p.name)}</b> · ${esc(gridgov.label(p.relation))} · ` +
      `<span class="phone">${esc(p.phone || t("ledger_no_phone"))}</span></span>` +
      `<span class="acts"><button type="button" data-act="phone">${esc(t("ledger_change_phone"))}</button>` +
      `<button type="button" class="secondary" data-act="out">${esc(t("ledger_move_out"))}</button></span>` +
      `<span class="meta">${esc(p.id_number)} · ${esc(gridgov.label(p.kind))}` +
      `${p.moved_in ? ` · ${esc(t("ledger_moved_in"))} ${esc(p.moved_in)}` : ""}</span></li>`).join("")
      : `<li class="gone">${esc(t("ledger_none"))}</li>`;
    $("ledger-unit").value = sheet.unit;
    $("ledger-floor").value = sheet.floor ?? "";
    $("ledger-room-no").value = sheet.room;
    $("ledger-phone").hidden = true;
    $("ledger-out").hidden = true;
  }

  async function load(id, message = "", error = false) {
    const purpose = encodeURIComponent("更正住户信息");
    const { data, headers } = await request("GET", `/api/field/households/${id}?purpose=${purpose}`);
    state.id = id;
    state.etag = headers.get("ETag");
    render(data);
    say(message, error);
  }

  async function open() {
    const id = Number($("visit").dataset.household);
    if (!id) return;
    if (!state.vocab) {
      state.vocab = await api("/api/vocab");
      $("ledger-relation").innerHTML = options(state.vocab.person_relations, "other");
      $("ledger-kind").innerHTML = options(state.vocab.residence_kinds, "registered");
    }
    $("visit").hidden = true;
    $("ledger").hidden = false;
    $("ledger-add").open = false;
    $("ledger-room").open = false;
    try { await load(id); } catch (e) { say(e.message, true); }
  }

  // One change, sent with the sheet's ETag; 412: someone else changed it, so it is loaded again and says so.
  async function send(method, path, body) {
    document.body.dataset.ledgerBusy = "1";
    try {
      const { data, headers } = await request(method, `/api/field/households/${state.id}${path}`, body,
                                              { "If-Match": state.etag });
      state.etag = headers.get("ETag");
      render(data);
      say(t("ledger_saved"));
      window.dispatchEvent(new CustomEvent("gridgov:ledger-changed", { detail: { household: state.id } }));
      return true;
    } catch (error) {
      if (error instanceof gridgov.ApiError && error.status === 412) await load(state.id, t("ledger_stale"), true);
      else say(error.message, true);
      return false;
    } finally {
      delete document.body.dataset.ledgerBusy;
    }
  }

  function pick(event) {
    const button = event.target.closest("button[data-act]");
    if (!button) return;
    const id = Number(button.closest("li").dataset.person);
    state.person = state.sheet.persons.find((p) => p.id === id);
    const phone = button.dataset.act === "phone";
    $("ledger-phone").hidden = !phone;
    $("ledger-out").hidden = phone;
    if (phone) {
      $("ledger-phone-who").textContent = t("ledger_new_phone") + state.person.name;
      $("ledger-phone-value").value = "";
      $("ledger-phone-value").focus();
    } else {
      $("ledger-out-who").textContent = t("ledger_out_date") + state.person.name;
      $("ledger-out-date").value = today();
    }
  }

  async function savePhone() {
    const value = $("ledger-phone-value").value.trim();
    await send("PATCH", `/persons/${state.person.id}`, { phone: value || null });
  }

  async function moveOut() {
    await send("POST", `/persons/${state.person.id}/move-out`, { moved_out: $("ledger-out-date").value || null });
  }

  async function addPerson() {
    const body = { name: $("ledger-name").value.trim(), id_number: $("ledger-id").value.trim().toUpperCase(),
                   phone: $("ledger-new-phone").value.trim() || null, relation: $("ledger-relation").value,
                   kind: $("ledger-kind").value };
    if (!body.name || !body.id_number) { say(t("ledger_need"), true); return; }
    if (await send("POST", "/persons", body)) {
      for (const id of ["ledger-name", "ledger-id", "ledger-new-phone"]) $(id).value = "";
      $("ledger-add").open = false;
    }
  }

  async function saveRoom() {
    const floor = $("ledger-floor").value;
    await send("PATCH", "", { unit: $("ledger-unit").value.trim(), room: $("ledger-room-no").value.trim(),
                              floor: floor === "" ? null : Number(floor) });
  }

  function wire() {
    $("ledger-open").addEventListener("click", () => open().catch((e) => say(e.message, true)));
    $("ledger-persons").addEventListener("click", pick);
    $("ledger-phone-save").addEventListener("click", savePhone);
    $("ledger-out-save").addEventListener("click", moveOut);
    $("ledger-add-save").addEventListener("click", addPerson);
    $("ledger-room-save").addEventListener("click", saveRoom);
    $("ledger-close").addEventListener("click", () => { $("ledger").hidden = true; });
    $("ledger").addEventListener("submit", (e) => e.preventDefault());
  }

  async function start() {
    if (state.vocab) {  // after a language change
      $("ledger-relation").innerHTML = options(state.vocab.person_relations, $("ledger-relation").value);
      $("ledger-kind").innerHTML = options(state.vocab.residence_kinds, $("ledger-kind").value);
    }
    if (state.id && !$("ledger").hidden) await load(state.id).catch(() => {});  // after a language change
  }

  wire();
  gridgov.part(LABELS, start);
})();
