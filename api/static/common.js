// gridgov page helpers shared by every page: labels in Chinese or English, HTML escaping, authenticated
// JSON requests, and the login dialog. Each page passes its own label table and a start() function.
"use strict";
const gridgov = (() => {
  const COMMON = {
    zh: { login_title: "登录 gridgov", username: "用户名", password: "密码", login: "登录", logout: "退出",
          bad_login: "用户名或密码错误", other: "English" },
    en: { login_title: "Log in to gridgov", username: "User name", password: "Password", login: "Log in",
          logout: "Log out", bad_login: "Wrong user name or password", other: "中文" },
  };
  let labels = COMMON, start = async () => {};
  const state = { lang: localStorage.getItem("gridgov.lang") || "zh" };
  const t = (key) => labels[state.lang][key] ?? COMMON[state.lang][key] ?? key;
  const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const token = () => sessionStorage.getItem("gridgov.token");

  class ApiError extends Error {
    constructor(status, body) { super(body.detail || String(status)); this.status = status; this.body = body; }
  }

  async function request(method, path, body, headers = {}) {
    const init = { method, headers: { ...headers } };
    if (token()) init.headers.Authorization = "Bearer " + token();
    if (body !== undefined) { init.body = JSON.stringify(body); init.headers["Content-Type"] = "application/json"; }
    const response = await fetch(path, init);
    if (response.status === 401) { showLogin(); }
    const data = response.status === 204 ? null : await response.json().catch(() => ({}));
    if (!response.ok) throw new ApiError(response.status, data || {});
    return { data, headers: response.headers };
  }
  const api = async (path) => (await request("GET", path)).data;

  function applyLanguage() {
    document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
    document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
    const button = document.getElementById("lang");
    if (button) button.textContent = t("other");
  }
  function showLogin() { document.getElementById("login").hidden = false; }

  async function run() {
    const me = await api("/api/auth/me");
    document.getElementById("who").textContent = `${me.username} · ${state.lang === "zh" ? me.role_zh : me.role}`;
    document.getElementById("logout").hidden = false;
    await start(me);
    document.body.dataset.ready = "1";
  }

  function setup(pageLabels, pageStart) {
    labels = { zh: { ...COMMON.zh, ...pageLabels.zh }, en: { ...COMMON.en, ...pageLabels.en } };
    start = pageStart;
    document.getElementById("login").addEventListener("submit", async (event) => {
      event.preventDefault();
      const response = await fetch("/api/auth/token", { method: "POST", body: new URLSearchParams(new FormData(event.target)) });
      if (!response.ok) { document.getElementById("login-error").textContent = t("bad_login"); return; }
      sessionStorage.setItem("gridgov.token", (await response.json()).access_token);
      event.target.hidden = true;
      document.getElementById("login-error").textContent = "";
      run().catch(console.error);
    });
    document.getElementById("logout").addEventListener("click", async () => {
      await request("POST", "/api/auth/logout").catch(() => {});
      sessionStorage.removeItem("gridgov.token");
      location.reload();
    });
    document.getElementById("lang").addEventListener("click", () => {
      state.lang = state.lang === "zh" ? "en" : "zh";
      localStorage.setItem("gridgov.lang", state.lang);
      applyLanguage();
      if (token()) run().catch(console.error);
    });
    applyLanguage();
    if (token()) { document.getElementById("login").hidden = true; run().catch(console.error); }
  }

  return { t, esc, api, request, setup, state, ApiError };
})();
