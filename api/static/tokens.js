// gridgov access tokens page: make, list and revoke one's own personal access tokens (read-only passwords of
// HTTP Basic for QGIS and GDAL). The secret is shown once, right after it is made.
"use strict";
const LABELS = {
  zh: { title: "访问令牌", intro: "访问令牌用于 QGIS 等 GIS 软件：在“基本认证 (Basic)”中填写您的用户名，密码处填写令牌。令牌只读，仅适用于 OGC API、矢量瓦片和导出。",
        name: "名称", days: "有效天数", create: "新建令牌", shown_once: "请立即复制：令牌只显示这一次。",
        basic_user: "Basic 用户名", hint: "开头", state: "状态", created: "创建", expires: "到期", last_used: "最近使用",
        revoke: "吊销", never: "从未", active: "有效", expired: "已过期", revoked: "已吊销", none: "还没有令牌",
        confirm: "吊销后使用此令牌的软件将无法访问。确定吗？" },
  en: { title: "Access tokens", intro: "Access tokens are for GIS software such as QGIS: under Basic authentication enter your user name, and the token as the password. Tokens are read-only and work only for the OGC API, vector tiles and exports.",
        name: "Name", days: "Days valid", create: "Create token", shown_once: "Copy it now: the token is shown only this once.",
        basic_user: "Basic user name", hint: "Starts with", state: "State", created: "Created", expires: "Expires",
        last_used: "Last used", revoke: "Revoke", never: "never", active: "active", expired: "expired",
        revoked: "revoked", none: "No tokens yet", confirm: "Software using this token will lose access. Revoke it?" },
};
const { t, esc, api, request } = gridgov;

const day = (iso) => (iso ? new Date(iso).toLocaleString(gridgov.state.lang === "zh" ? "zh-CN" : "en-GB",
  { dateStyle: "short", timeStyle: "short" }) : t("never"));

async function refresh() {
  const list = await api("/api/tokens");
  const body = document.querySelector("#tokens tbody");
  body.innerHTML = list.length ? list.map((k) => `<tr class="${esc(k.state)}" data-id="${k.id}">
      <td>${esc(k.name)}</td><td><code>${esc(k.hint)}…</code></td><td>${esc(t(k.state))}</td>
      <td>${esc(day(k.created_at))}</td><td>${esc(day(k.expires_at))}</td><td>${esc(day(k.last_used_at))}</td>
      <td>${k.state === "active" ? `<button type="button" class="revoke" data-id="${k.id}">${esc(t("revoke"))}</button>` : ""}</td>
    </tr>`).join("") : `<tr><td colspan="7">${esc(t("none"))}</td></tr>`;
  document.body.dataset.tokens = String(list.length);
}

function say(text) { document.getElementById("message").textContent = text; }

document.getElementById("create").addEventListener("submit", async (event) => {
  event.preventDefault();
  say("");
  try {
    const made = (await request("POST", "/api/tokens", {
      name: document.getElementById("token-name").value,
      days: Number(document.getElementById("token-days").value),
    })).data;
    document.getElementById("secret").textContent = made.secret;
    document.getElementById("secret-user").textContent = made.username;
    document.getElementById("created").hidden = false;
    event.target.reset();
    await refresh();
  } catch (error) { say(error.message); }
});

document.querySelector("#tokens tbody").addEventListener("click", async (event) => {
  const button = event.target.closest("button.revoke");
  if (!button || !window.confirm(t("confirm"))) return;
  try {
    await request("DELETE", `/api/tokens/${button.dataset.id}`);
    await refresh();
  } catch (error) { say(error.message); }
});

gridgov.setup(LABELS, refresh);
