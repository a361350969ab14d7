// gridgov printable coverage report (/inspector/report?<the inspector page's query>): a map of the enclosures,
// their openings coloured as on the inspector page and the buildings beyond the threshold, above the report of
// GET /api/inspection/coverage/report.html for the same query, and a print button. Opened in its own tab by the
// inspector page, whose login it shares (a tab opened by window.open gets a copy of the opener's sessionStorage).
"use strict";
(() => {
  const LABELS = {
    zh: { title: "卡口覆盖报告", print: "打印", loading: "正在生成报告…" },
    en: { title: "Checkpoint coverage report", print: "Print", loading: "Preparing the report…" },
  };
  const { t, api, token } = gridgov;
  const $ = (id) => document.getElementById(id);
  const query = new URLSearchParams(location.search);
  document.body.classList.add("report-page");
  const map = L.map("report-map", { zoomSnap: 0.25, preferCanvas: false }).setView([22.565, 114.072], 15);
  map.attributionControl.setPrefix(false);
  const C = gridgov.OPENING_COLOURS;
  const enclosures = L.geoJSON(null, { style: { color: "#1f3b5a", weight: 2, fillOpacity: 0.04 } }).addTo(map);
  const beyond = L.geoJSON(null, { pointToLayer: (f, ll) => L.circleMarker(ll, { radius: 3 + Math.sqrt(f.properties.households),
                                                                                 color: "#8e24aa", weight: 2, fillOpacity: 0.3 }) }).addTo(map);
  const openings = L.geoJSON(null, { pointToLayer: (f, ll) => L.circleMarker(ll, { radius: 6, color: "#fff", weight: 2,
    fillColor: C[gridgov.openingClass(f.properties)], fillOpacity: 1 }) }).addTo(map);

  async function report() {  // the server's printable HTML: its <style> and body moved into this page
    const response = await fetch(`/api/inspection/coverage/report.html?${query}`,
                                 { headers: { Authorization: "Bearer " + token() } });
    if (!response.ok) throw new gridgov.ApiError(response.status, await response.json().catch(() => ({})));
    const doc = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const style of doc.querySelectorAll("style")) {
      const copy = document.createElement("style");
      copy.textContent = style.textContent;      // allowed by its hash (api/headers.py TEMPLATE_STYLE_HASHES)
      document.head.appendChild(copy);
    }
    $("report-body").replaceChildren(...[...doc.body.childNodes].map((n) => document.importNode(n, true)));
    document.title = doc.title;
  }

  async function start() {
    $("message").textContent = t("loading");
    const [fc, ops, far] = await Promise.all([
      api(`/api/inspection/layers/enclosures?${query}`), api(`/api/inspection/layers/openings?${query}`),
      api(`/api/inspection/layers/households_beyond?${query}`), report()]);
    enclosures.clearLayers().addData(fc);
    openings.clearLayers().addData(ops);
    beyond.clearLayers().addData(far);
    const bounds = enclosures.getBounds();
    if (bounds.isValid()) map.fitBounds(bounds, { animate: false, padding: [10, 10] });
    $("message").textContent = "";
    document.body.dataset.report = "1";
  }

  $("print-now").addEventListener("click", () => window.print());
  gridgov.setup(LABELS, () => start().catch((e) => { $("message").textContent = e.message; }));
})();
