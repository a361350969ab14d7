// gridgov page helpers shared by every page: labels in Chinese or English, HTML escaping, authenticated
// JSON requests, and the login dialog. Each page passes its own label table and a start() function.
"use strict";
const gridgov = (() => {
  const COMMON = {
    zh: { login_title: "登录 gridgov", username: "用户名", password: "密码", login: "登录", logout: "退出",
          bad_login: "用户名或密码错误", other: "English", basemap: "底图", no_basemap: "无底图" },
    en: { login_title: "Log in to gridgov", username: "User name", password: "Password", login: "Log in",
          logout: "Log out", bad_login: "Wrong user name or password", other: "中文", basemap: "Basemap",
          no_basemap: "No basemap" },
  };
  let labels = COMMON, start = async () => {};
  const parts = [];
  const state = { lang: localStorage.getItem("gridgov.lang") || "zh" };
  const t = (key) => labels[state.lang][key] ?? COMMON[state.lang][key] ?? key;
  const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const token = () => sessionStorage.getItem("gridgov.token");

  // The message catalogue (GET /api/messages, spatial/messages.py): an error body's `code` in the page's language,
  // its {placeholders} filled from the body's fields; kept in localStorage so that offline pages have it too.
  let catalogue = JSON.parse(localStorage.getItem("gridgov.messages") || "{}");
  const catalogueLoaded = fetch("/api/messages").then((r) => (r.ok ? r.json() : catalogue)).then((m) => {
    catalogue = m;
    localStorage.setItem("gridgov.messages", JSON.stringify(m));
  }).catch(() => {});
  function say(body) {  // the text of an error body, or its English detail when the catalogue lacks the code
    const entry = catalogue[body.code];
    if (!entry) return body.detail;
    let missing = false;
    const text = entry[state.lang].replace(/\{(\w+)\}/g, (_, k) => (k in body ? String(body[k]) : (missing = true, "")));
    return missing ? body.detail : text;
  }

  class ApiError extends Error {
    constructor(status, body) { super(say(body) || String(status)); this.status = status; this.body = body; }
  }

  async function request(method, path, body, headers = {}) {
    const init = { method, headers: { ...headers } };
    if (token()) init.headers.Authorization = "Bearer " + token();
    if (body !== undefined) { init.body = JSON.stringify(body); init.headers["Content-Type"] = "application/json"; }
    let response;
    try { response = await fetch(path, init); } catch (error) {  // no answer at all: offline, server down
      throw new ApiError(0, { error: "Network", code: "network", detail: String(error.message || error) });
    }
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
    await catalogueLoaded;
    const me = await api("/api/auth/me");
    document.getElementById("who").textContent = `${me.username} · ${state.lang === "zh" ? me.role_zh : me.role}`;
    document.getElementById("logout").hidden = false;
    await start(me);
    for (const p of parts) await p.start(me);
    document.body.dataset.ready = "1";
  }

  // A part of a page kept in its own file (the field page's cases tab): its labels join the page's, and its
  // start(me) runs after the page's, on every (re)start. Register it before the page calls setup().
  function part(partLabels, partStart) { parts.push({ labels: partLabels, start: partStart }); }

  function setup(pageLabels, pageStart) {
    const all = [pageLabels, ...parts.map((p) => p.labels)];
    labels = { zh: Object.assign({}, COMMON.zh, ...all.map((l) => l.zh)),
               en: Object.assign({}, COMMON.en, ...all.map((l) => l.en)) };
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

  // <option>s of the case categories of GET /api/cases/categories, grouped by parent (<optgroup>); a parent with
  // children is offered last in its group as "其他…" (other), a parent without children stands alone.
  function categoryOptions(categories) {
    const option = (c, name) => `<option value="${esc(c.code)}">${esc(name || c.name)} · ${esc(c.name_en)}</option>`;
    return categories.filter((c) => !c.parent_code).map((top) => {
      const kids = categories.filter((c) => c.parent_code === top.code);
      if (!kids.length) return option(top);
      return `<optgroup label="${esc(top.name)} · ${esc(top.name_en)}">${kids.map((k) => option(k)).join("")}` +
             `${option(top, `其他${top.name}问题`)}</optgroup>`;
    }).join("");
  }

  // Openings (gaps of an enclosure's perimeter) by status, one colour per class on every page; the figures are
  // the `totals` of GET /api/inspection/layers/openings (spatial/store/openings.py opening_counts).
  const OPENING_COLOURS = { open: "#d32f2f", sealed: "#757575", staffed: "#2e7d32", unstaffed: "#ff9800" };
  const label = (l) => (l ? (state.lang === "zh" ? l.zh : l.en) : "");  // a {zh, en} label of the API
  function openingClass(p) {
    if (p.status.code === "sealed" || p.status.code === "open") return p.status.code;
    return p.checkpoint && p.checkpoint.staffed ? "staffed" : "unstaffed";
  }

  // Labels of the areas of a GeoJSON `layer` of polygons (grids): `textOf(properties)` at each polygon's centre,
  // shown at every zoom where the label fits inside the polygon's drawn box (90 % of it, in screen pixels) and
  // hidden (kept in place, invisible) where it does not. Call draw() after each addData. Issue 19 item 4.
  function areaLabels(map, layer, textOf) {
    const group = L.layerGroup();  // the labels, shown with their layer (the layer switcher)
    if (map.hasLayer(layer)) group.addTo(map);
    layer.on("add", () => { group.addTo(map); fit(); });
    layer.on("remove", () => group.remove());
    function fit() {
      let shown = 0;
      group.eachLayer((tip) => {
        const el = tip.getElement();
        if (!el) return;
        const b = tip.area.getBounds(), a = map.latLngToContainerPoint(b.getNorthWest()),
              z = map.latLngToContainerPoint(b.getSouthEast());
        const fits = el.offsetWidth <= 0.9 * (z.x - a.x) && el.offsetHeight <= 0.9 * (z.y - a.y);
        el.classList.toggle("unfit", !fits);
        if (fits) shown += 1;
      });
      map.getContainer().dataset.areaLabels = shown;  // for the page tests
    }
    function draw() {
      group.clearLayers();
      layer.eachLayer((l) => {
        if (!l.getBounds || !l.feature) return;
        const tip = L.tooltip({ permanent: true, direction: "center", interactive: false, className: "area-label" })
          .setLatLng(l.getCenter()).setContent(esc(textOf(l.feature.properties)));
        tip.area = l;
        group.addLayer(tip);
      });
      fit();
    }
    map.on("zoomend", fit);
    return { draw, fit };
  }

  return { t, esc, api, request, setup, part, state, ApiError, token, categoryOptions, OPENING_COLOURS, openingClass,
           label, say, areaLabels };
})();

// GCJ-02 (Amap, Tencent): a port of spatial/geometry/crs.py (forward formula, iterative inverse, shifted only when
// the WGS 84 point is in mainland China, by the polygon the server sends with /api/basemaps). Arguments and
// results are (lon, lat) in degrees, as in the Python module; tests/test_basemap_page.py compares the two.
const gcj02 = (() => {
  const A = 6378245.0, EE = 0.00669342162296594323, PI = Math.PI;
  let polygons = [];  // [[bbox, rings]] of the mainland MultiPolygon
  function polyLat(x, y) {
    let r = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * Math.sqrt(Math.abs(x));
    r += (20.0 * Math.sin(6.0 * x * PI) + 20.0 * Math.sin(2.0 * x * PI)) * 2.0 / 3.0;
    r += (20.0 * Math.sin(y * PI) + 40.0 * Math.sin(y / 3.0 * PI)) * 2.0 / 3.0;
    r += (160.0 * Math.sin(y / 12.0 * PI) + 320.0 * Math.sin(y * PI / 30.0)) * 2.0 / 3.0;
    return r;
  }
  function polyLon(x, y) {
    let r = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * Math.sqrt(Math.abs(x));
    r += (20.0 * Math.sin(6.0 * x * PI) + 20.0 * Math.sin(2.0 * x * PI)) * 2.0 / 3.0;
    r += (20.0 * Math.sin(x * PI) + 40.0 * Math.sin(x / 3.0 * PI)) * 2.0 / 3.0;
    r += (150.0 * Math.sin(x / 12.0 * PI) + 300.0 * Math.sin(x / 30.0 * PI)) * 2.0 / 3.0;
    return r;
  }
  function forward(lon, lat) {  // by formula, no mainland test
    const radLat = lat * PI / 180.0, magic = 1 - EE * Math.sin(radLat) ** 2, sqrtMagic = Math.sqrt(magic);
    const dlat = (polyLat(lon - 105.0, lat - 35.0) * 180.0) / ((A * (1 - EE)) / (magic * sqrtMagic) * PI);
    const dlon = (polyLon(lon - 105.0, lat - 35.0) * 180.0) / (A / sqrtMagic * Math.cos(radLat) * PI);
    return [lon + dlon, lat + dlat];
  }
  function setMainland(geometry) {
    const list = !geometry ? [] : geometry.type === "Polygon" ? [geometry.coordinates] : geometry.coordinates;
    polygons = list.map((rings) => {
      const xs = rings[0].map((p) => p[0]), ys = rings[0].map((p) => p[1]);
      return [[Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)], rings];
    });
  }
  function inMainland(lon, lat) {  // even-odd rule over every ring of each polygon (holes included)
    return polygons.some(([b, rings]) => {
      if (lon < b[0] || lon > b[2] || lat < b[1] || lat > b[3]) return false;
      let inside = false;
      for (const ring of rings) {
        for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
          const [xi, yi] = ring[i], [xj, yj] = ring[j];
          if ((yi > lat) !== (yj > lat) && lon < (xj - xi) * (lat - yi) / (yj - yi) + xi) inside = !inside;
        }
      }
      return inside;
    });
  }
  function fromWgs84(lon, lat) { return inMainland(lon, lat) ? forward(lon, lat) : [lon, lat]; }
  function toWgs84(lon, lat) {
    let x = lon, y = lat;
    for (let i = 0; i < 20; i++) {
      const [fx, fy] = forward(x, y), ex = fx - lon, ey = fy - lat;
      x -= ex; y -= ey;
      if (Math.abs(ex) <= 1e-9 && Math.abs(ey) <= 1e-9) break;
    }
    return inMainland(x, y) ? [x, y] : [lon, lat];
  }
  return { fromWgs84, toWgs84, inMainland, setMainland };
})();

// Basemaps: a switcher (none by default) over the basemaps of /api/basemaps, whose tiles come from this server's
// proxy with the bearer token (fetch, drawn on canvas tiles: no image from another origin, no key in the page).
// Under a GCJ-02 basemap the map's CRS becomes Web Mercator of GCJ-02: every layer, stored and sent in WGS 84, is
// drawn shifted, and clicks and drawings come back in WGS 84 (docs/decisions/0013-basemaps.md).
const basemaps = (() => {
  const M = L.Projection.SphericalMercator;
  const GCJ02_CRS = L.extend({}, L.CRS.EPSG3857, {
    code: "GCJ-02",
    projection: {
      bounds: M.bounds,
      project: (ll) => { const [lon, lat] = gcj02.fromWgs84(ll.lng, ll.lat); return M.project(L.latLng(lat, lon)); },
      unproject: (p) => { const g = M.unproject(p), [lon, lat] = gcj02.toWgs84(g.lng, g.lat); return L.latLng(lat, lon); },
    },
  });
  const ProxiedTiles = L.GridLayer.extend({
    initialize(path, options) { this._path = path; L.GridLayer.prototype.initialize.call(this, options); },
    onAdd(map) { this.on("tileunload", (e) => e.tile.abort && e.tile.abort()); L.GridLayer.prototype.onAdd.call(this, map); },
    createTile(coords, done) {
      const tile = document.createElement("canvas"), controller = new AbortController();
      tile.width = tile.height = 256;
      tile.dataset.tile = `${coords.z}/${coords.x}/${coords.y}`;
      tile.abort = () => controller.abort();
      const url = this._path.replace("{z}", coords.z).replace("{x}", coords.x).replace("{y}", coords.y);
      fetch(url, { headers: { Authorization: "Bearer " + gridgov.token() }, signal: controller.signal })
        .then((r) => { if (!r.ok) throw new Error(`tile ${url}: ${r.status}`); return r.blob(); })
        .then((blob) => createImageBitmap(blob))
        .then((image) => {
          tile.getContext("2d").drawImage(image, 0, 0, 256, 256);
          document.body.dataset.basemapTiles = String(Number(document.body.dataset.basemapTiles || 0) + 1);
          done(null, tile);
        })
        .catch((error) => { if (error.name !== "AbortError") done(error, tile); });
      return tile;
    },
  });
  const state = new WeakMap();  // map -> { choice, layer, control, list }

  function setCrs(map, crs) {
    if (map.options.crs === crs) return;
    const center = map.getCenter(), zoom = map.getZoom();
    map.options.crs = crs;
    map._resetView(center, zoom, true);  // Leaflet 1.9: re-projects every layer (viewreset); no public API for it
  }

  function choose(map, name) {
    const s = state.get(map);
    if (s.layer) { map.removeLayer(s.layer); s.layer = null; }
    const chosen = s.list.find((b) => b.name === name);
    s.choice = chosen ? chosen.name : "";
    setCrs(map, chosen && chosen.datum === "gcj02" ? GCJ02_CRS : L.CRS.EPSG3857);
    if (chosen) {
      s.layer = new ProxiedTiles(chosen.tiles, { maxNativeZoom: chosen.max_zoom, maxZoom: 22,
                                                 attribution: gridgov.esc(chosen.attribution) });
      s.layer.addTo(map);
    }
    document.body.dataset.basemap = s.choice;
    document.body.dataset.basemapDatum = chosen ? chosen.datum : "";
  }

  // The switcher of `map` (call from a page's start(); again after a language change keeps the choice).
  // Without configured basemaps there is no switcher and the page stays as it was.
  async function control(map) {
    const { basemaps: list, mainland } = await gridgov.api("/api/basemaps");
    gcj02.setMainland(mainland);
    const s = state.get(map) || { choice: "", layer: null, control: null, list: [] };
    state.set(map, s);
    s.list = list;
    if (s.control) { s.control.remove(); s.control = null; }
    if (!list.length) { if (s.choice) choose(map, ""); return; }
    const zh = gridgov.state.lang === "zh";
    s.control = L.control({ position: "topright" });
    s.control.onAdd = () => {
      const box = L.DomUtil.create("label", "leaflet-bar basemap-control");
      box.innerHTML = `<span>${gridgov.esc(gridgov.t("basemap"))}</span> <select id="basemap">` +
        `<option value="">${gridgov.esc(gridgov.t("no_basemap"))}</option>` +
        list.map((b) => `<option value="${gridgov.esc(b.name)}">${gridgov.esc(zh ? b.name_zh : b.name_en)}` +
                        `${b.datum === "gcj02" ? " (GCJ-02)" : ""}</option>`).join("") + "</select>";
      L.DomEvent.disableClickPropagation(box);
      L.DomEvent.disableScrollPropagation(box);
      const select = box.querySelector("select");
      select.value = list.some((b) => b.name === s.choice) ? s.choice : "";
      select.addEventListener("change", () => choose(map, select.value));
      return box;
    };
    s.control.addTo(map);
    if (s.choice && !list.some((b) => b.name === s.choice)) choose(map, "");
  }

  return { control, choose, GCJ02_CRS };
})();
