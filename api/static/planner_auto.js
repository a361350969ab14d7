// The planner page's automatic plans (自动方案): a balanced plan of the chosen community proposed beside the current
// grids (POST /api/plans/propose, nothing written), its figures compared with today's, adopted with a reason and the
// proposal's basis as If-Match (POST /api/plans/adopt; 412 when a grid changed since); and the micro-grids of the
// chosen grid shown and regenerated (POST /api/grids/{code}/micro-grids). Building heads are not kept yet, so the
// micro-grids are labelled by number only.
// Kept apart from planner.js and registered with gridgov.part(); it reaches the map through window.planner and hears
// the page's choices by the "planner:community" and "planner:grid" events.
"use strict";
(() => {
  const LABELS = {
    zh: { auto_title: "自动方案与微网格", plan_low: "每格最少户数", plan_high: "每格最多户数", propose: "生成均衡方案",
          adopt_reason: "采用原因", adopt: "采用方案", figure: "指标", now: "现状", proposed_plan: "方案",
          grid_count: "网格数", in_range: "户数在范围内", min_h: "最少户数", max_h: "最多户数", mean_dev: "平均偏差（户）",
          excluded: "未纳入方案的楼栋", adopted: "已采用：", created: "新网格", retired: "撤销网格", moved_b: "楼栋变更网格",
          unassigned: "未划入网格的楼栋", micro_made: "微网格", left_on_retired: "仍分配在旧网格上的网格员",
          plan_stale: "方案生成后网格已被修改：请重新生成方案再采用。", need_adopt_reason: "请填写采用原因",
          show_micro: "显示所选网格的微网格", regenerate: "重新生成微网格", micro_report: "微网格", exact_five: "恰为 5 栋",
          kept: "保留", new_micro: "新建", removed: "删除", proposing: "正在计算方案…", micro_none: "该网格没有微网格" },
    en: { auto_title: "Automatic plan and micro-grids", plan_low: "Fewest households per grid",
          plan_high: "Most households per grid", propose: "Propose a balanced plan", adopt_reason: "Reason for adopting",
          adopt: "Adopt the plan", figure: "Figure", now: "Now", proposed_plan: "Plan", grid_count: "Grids",
          in_range: "Households in range", min_h: "Fewest households", max_h: "Most households",
          mean_dev: "Mean deviation (households)", excluded: "Buildings left out of the plan", adopted: "Adopted: ",
          created: "new grids", retired: "grids retired", moved_b: "buildings changing grid",
          unassigned: "buildings in no grid", micro_made: "micro-grids", left_on_retired: "workers still on retired grids",
          plan_stale: "Grids changed after the plan was made: propose again before adopting.",
          need_adopt_reason: "Give a reason for adopting", show_micro: "Show the chosen grid's micro-grids",
          regenerate: "Regenerate micro-grids", micro_report: "Micro-grids", exact_five: "of exactly 5 buildings",
          kept: "kept", new_micro: "new", removed: "removed", proposing: "Computing the plan…",
          micro_none: "This grid has no micro-grids" },
  };
  const { t, esc, api, request } = gridgov;
  const $ = (id) => document.getElementById(id);
  let proposal = null, proposalLayer = null, microLayer = null;

  const range = () => ({ low: Number($("plan-low").value), high: Number($("plan-high").value) });
  const pct = (share) => `${Math.round(share * 100)}%`;
  const say = (text, kind = "") => { $("auto-message").textContent = text; $("auto-message").className = kind; };

  function clearProposal() {
    proposal = null;
    proposalLayer.clearLayers();
    $("proposal").innerHTML = "";
    $("adopt").disabled = true;
  }

  function comparison(now, plan) {
    const rows = [["grid_count", (s) => s.grids], ["in_range", (s) => pct(s.share_in_range)],
                  ["min_h", (s) => s.min_households], ["max_h", (s) => s.max_households],
                  ["mean_dev", (s) => Math.round(s.mean_abs_deviation)]];
    return `<table id="plan-figures"><tr><th>${esc(t("figure"))}</th><th>${esc(t("now"))}</th><th>${esc(t("proposed_plan"))}</th></tr>` +
      rows.map(([key, f]) => `<tr data-figure="${key}"><td>${esc(t(key))}</td><td>${esc(now.grids ? f(now) : "–")}</td>` +
        `<td>${esc(f(plan))}</td></tr>`).join("") + `</table>`;
  }

  async function propose() {
    const community = planner.state.community, { low, high } = range();
    clearProposal();
    say(t("proposing"));
    try {
      const { data } = await request("POST", "/api/plans/propose", { community_code: community, low, high });
      if (planner.state.community !== community) return;  // another community was chosen meanwhile
      proposal = { data, low, high, community };
      proposalLayer.addData(data.grids);
      $("proposal").innerHTML = comparison(data.current_stats, data.stats) + (data.excluded_buildings.length
        ? `<p>${esc(t("excluded"))}: ${data.excluded_buildings.length}</p>` : "");
      $("adopt").disabled = false;
      say("");
      document.body.dataset.proposals = String(Number(document.body.dataset.proposals || 0) + 1);
    } catch (error) { say(error.message, "error"); }
  }

  async function adopt() {
    if (!proposal) return;
    const reason = $("adopt-reason").value.trim();
    if (!reason) { say(t("need_adopt_reason"), "error"); return; }
    try {
      const { data } = await request("POST", "/api/plans/adopt",
        { community_code: proposal.community, low: proposal.low, high: proposal.high, reason },
        { "If-Match": proposal.data.basis });
      clearProposal();
      $("adopt-reason").value = "";
      await planner.loadCommunity(planner.state.community);
      const parts = [[data.created.length, "created"], [data.retired.length, "retired"], [data.buildings_moved, "moved_b"],
                     [data.buildings_unassigned, "unassigned"], [data.micro_grids, "micro_made"],
                     [data.assignments_left_on_retired, "left_on_retired"]];
      say(t("adopted") + parts.map(([n, key]) => `${n} ${t(key)}`).join(" · "), "ok");
    } catch (error) {
      if (error.status === 412) { clearProposal(); say(t("plan_stale"), "error"); } else say(error.message, "error");
    }
  }

  function gridId(code) { return planner.state.grids.find((f) => f.properties.code === code)?.properties.id; }

  async function showMicro() {
    microLayer.clearLayers();
    const code = planner.state.grid, id = gridId(code);
    if (!$("show-micro").checked || !id) return;
    const fc = await api(`/api/layers/micro_grids?grid_id=${id}&limit=1000`);
    if (planner.state.grid !== code) return;
    microLayer.addData(fc);
    if (!fc.features.length) $("micro-report").textContent = t("micro_none");
  }

  async function regenerate() {
    const code = planner.state.grid;
    if (!code) { say(t("choose_grid"), "error"); return; }
    try {
      const { data } = await request("POST", `/api/grids/${code}/micro-grids`);
      $("micro-report").textContent = `${t("micro_report")} ${data.micro_grids} · ${t("exact_five")} ${pct(data.exact_five_share)}` +
        ` · ${t("kept")} ${data.kept} · ${t("new_micro")} ${data.created} · ${t("removed")} ${data.removed}`;
      $("show-micro").checked = true;
      await showMicro();
    } catch (error) { say(error.message, "error"); }
  }

  function start() {
    const map = planner.map;
    if (!proposalLayer) {
      proposalLayer = L.geoJSON(null, { pmIgnore: true, interactive: false, style: (f) => {
        const ok = proposal && f.properties.households >= proposal.low && f.properties.households <= proposal.high;
        return { color: ok ? "#00897b" : "#ef6c00", weight: 3, dashArray: "8 5", fill: false };
      }, onEachFeature: (f, l) => l.bindTooltip(`${f.properties.households} ${t("households_unit")}`,
        { permanent: true, direction: "center", className: "plan-label" }) }).addTo(map);
      microLayer = L.geoJSON(null, { pmIgnore: true, interactive: false,
        style: { color: "#5e35b1", weight: 1, dashArray: "3 3", fillColor: "#b39ddb", fillOpacity: 0.15 },
        onEachFeature: (f, l) => l.bindTooltip(String(f.properties.seq), { permanent: true, direction: "center",
                                                                            className: "micro-label" }) }).addTo(map);
      $("propose").addEventListener("click", propose);
      $("adopt").addEventListener("click", adopt);
      $("show-micro").addEventListener("change", showMicro);
      $("regenerate").addEventListener("click", regenerate);
      document.addEventListener("planner:community", () => { clearProposal(); say(""); $("micro-report").textContent = ""; });
      document.addEventListener("planner:grid", () => { $("micro-report").textContent = ""; showMicro(); });
    }
  }

  gridgov.part(LABELS, start);
})();
