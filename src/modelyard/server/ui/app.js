/* The modelyard dashboard: polls the admin stats API and draws it. No build step, no CDN. */
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const {esc} = Charts;
  const KEY = "modelyard.masterKey";
  const STEPS = {"5m": "5s", "15m": "10s", "1h": "1m", "24h": "15m"};
  const POLL = {"5m": 3000, "15m": 3000, "1h": 10000, "24h": 30000};
  const state = {spendBy: "group", paused: false, timer: null, features: null, charts: null};

  // --- formatting ------------------------------------------------------------------------
  const ms = (v) => v == null ? "–" : v >= 10000 ? (v / 1000).toFixed(1) + " s" : v >= 1000 ? (v / 1000).toFixed(2) + " s" : v.toFixed(v < 10 ? 1 : 0) + " ms";
  const pct = (v) => v == null ? "–" : (v * 100).toFixed(v && v < 0.1 ? 2 : 1) + "%";
  const usd = (v) => {
    if (v == null) return "–";
    if (v === 0) return "$0";
    if (v >= 100) return "$" + v.toFixed(0);
    if (v >= 1) return "$" + v.toFixed(2);
    return "$" + v.toPrecision(3);
  };
  const usdAxis = (v) => v == null ? "" : v === 0 ? "$0" : "$" + (v >= 1 ? v.toFixed(2) : Number(v.toPrecision(2)).toString());
  const num = (v) => v == null ? "–" : v >= 1e6 ? (v / 1e6).toFixed(1) + "M" : v >= 1e4 ? (v / 1e3).toFixed(1) + "k" : String(Math.round(v * 100) / 100);

  // --- auth and fetching ------------------------------------------------------------------
  function takeKeyFromFragment() {  // `make demo` prints /ui#key=...: keep it for the tab, drop it from the address bar
    const m = location.hash.match(/key=([^&]+)/);
    if (m) { sessionStorage.setItem(KEY, decodeURIComponent(m[1])); history.replaceState(null, "", location.pathname); }
  }
  class Unauthorized extends Error {}
  async function api(path) {
    const headers = {};
    const key = sessionStorage.getItem(KEY);
    if (key) headers.Authorization = "Bearer " + key;
    const r = await fetch(path, {headers, cache: "no-store"});
    if (r.status === 401) throw new Unauthorized();
    if (r.status === 404) return null;
    if (!r.ok) {
      let msg = r.status + "";
      try { msg = (await r.json()).error.message; } catch (_) { /* not JSON */ }
      throw new Error(msg);
    }
    return r.json();
  }

  function showLogin(message) {
    $("main").hidden = true; $("login").hidden = false; $("logout").hidden = true;
    $("login-error").hidden = !message; $("login-error").textContent = message || "";
    $("key").focus();
  }
  function showMain() {
    $("login").hidden = true; $("main").hidden = false;
    $("logout").hidden = !sessionStorage.getItem(KEY);
    if (!state.charts) buildCharts();
  }

  // --- charts -----------------------------------------------------------------------------
  function buildCharts() {
    state.charts = {
      traffic: new Charts.Line($("c-traffic"), $("lg-traffic"), [
        {label: "requests/s", fill: true}, {label: "errors/s", color: 6}, {label: "fallbacks/s", color: 1}], {yFormat: num}),
      latency: new Charts.Line($("c-latency"), $("lg-latency"), [
        {label: "p50", color: 0}, {label: "p95", color: 3}, {label: "TTFT p50", color: 2}], {yFormat: (v) => ms(v)}),
      cost: new Charts.Line($("c-cost"), $("lg-cost"), [{label: "USD per step", color: 2, fill: true, bars: true}], {yFormat: usdAxis}),
    };
  }

  function kpis(s) {
    $("k-rps").textContent = s.requests_per_s.toFixed(2);
    $("k-req").textContent = `${num(s.requests)} requests`;
    $("k-lat").textContent = `${ms(s.latency_p50_ms)} · ${ms(s.latency_p95_ms)}`;
    $("k-ttft").textContent = `TTFT p50 ${ms(s.ttft_p50_ms)}`;
    $("k-err").textContent = pct(s.error_rate);
    $("k-errn").textContent = `${num(s.errors)} errors` + (s.cancelled ? ` · ${num(s.cancelled)} cancelled` : "");
    $("k-fb").textContent = pct(s.fallback_rate);
    $("k-fbn").textContent = `${num(s.fallbacks)} served after a fallback`;
    $("k-cache").textContent = pct(s.cache_hit_rate);
    $("k-saved").textContent = `${num(s.cache_hits)} hits · saved ${usd(s.saved_usd)}`;
    $("k-cost").textContent = usd(s.cost_usd);
    $("k-tok").textContent = `${num(s.input_tokens)} in · ${num(s.output_tokens)} out tokens`;
  }

  function series(ts) {
    const x = ts.t, step = ts.step_s;
    const per = (a) => a.map((v) => v / step);
    state.charts.traffic.set([x, ts.requests_per_s, per(ts.errors), per(ts.fallbacks)]);
    state.charts.latency.set([x, ts.latency_p50_ms, ts.latency_p95_ms, ts.ttft_p50_ms]);
    state.charts.cost.set([x, ts.cost_usd]);
  }

  function models(m) {
    const deps = m.deployments.filter((d) => d.deployment);
    Charts.groupedBars($("models-bars"), deps.map((d) => ({label: d.deployment,
      values: [d.latency_p50_ms, d.latency_p95_ms, d.ttft_p50_ms]})), ["p50", "p95", "TTFT p50"], ms);
    $("models-table").innerHTML = "<tr><th>deployment</th><th>requests</th><th>error rate</th><th>p50</th><th>p95</th><th>TTFT</th><th>cost</th></tr>" +
      m.deployments.map((d) => `<tr><td>${esc(d.deployment || "(not routed)")}</td><td>${num(d.requests)}</td>
        <td>${pct(d.error_rate)}</td><td>${ms(d.latency_p50_ms)}</td><td>${ms(d.latency_p95_ms)}</td>
        <td>${ms(d.ttft_p50_ms)}</td><td>${usd(d.cost_usd)}</td></tr>`).join("");
  }

  function routing(r, depColors) {
    const el = $("routing");
    const groups = r.groups.filter((g) => g.is_group === true);
    const direct = r.groups.filter((g) => g.is_group !== true);
    if (!r.groups.length) { el.innerHTML = `<div class="empty">no requests in this window yet</div>`; return; }
    const w = el.clientWidth || 600;
    let html = "";
    for (const g of groups) {
      const parts = g.mix.map((p) => ({label: p.deployment, share: p.share, color: depColors(p.deployment)}));
      const legend = g.mix.map((p) => `<span><i class="sw" style="background:${Charts.palette()[depColors(p.deployment) % 8]}"></i>${esc(p.deployment)} ${pct(p.share)}</span>`).join(" ");
      const reasons = g.reasons.slice(0, 4).map((x) => `<li><span class="pct">${pct(x.share)}</span>
        <span class="tag">${esc(x.rule ? "rule " + x.rule : (x.deployment || "–"))}</span>
        <span class="why" title="${esc(x.example_reason || "")}">→ ${esc(x.deployment || "none")}: ${esc(x.example_reason || "")}</span></li>`).join("");
      html += `<div class="group"><div class="head"><span><b>${esc(g.group)}</b> <span class="tag">${esc(g.configured_strategy || g.strategy || "")}</span></span>
        <span class="muted">${num(g.requests)} req · ${num(g.fallbacks)} fallbacks · ${num(g.errors)} errors</span></div>
        ${Charts.stacked(parts, w)}<div class="legend">${legend}</div><ul class="reasons">${reasons}</ul></div>`;
    }
    if (direct.length) {
      html += `<div class="group"><div class="head"><b>by deployment name, or unknown names</b></div><div class="legend">` +
        direct.map((g) => `<span class="tag">${esc(g.group)} · ${num(g.requests)} req${g.errors ? " · " + num(g.errors) + " errors" : ""}</span>`).join(" ") + "</div></div>";
    }
    el.innerHTML = html;
  }

  function spend(s) {
    const total = s.total_usd || 0;
    Charts.bars($("spend"), s.rows.slice(0, 10).map((r) => ({label: r.name, value: r.cost_usd,
      text: `${usd(r.cost_usd)} · ${total ? pct(r.cost_usd / total) : "–"} · ${num(r.requests)} req`})), usd);
  }

  function breakers(b) {
    $("breakers").innerHTML = b.deployments.map((d) => `<div class="tile ${esc(d.state)}">
      <span class="st">${esc(d.state.replace("_", " "))}</span><div class="name">${esc(d.deployment)}</div>
      <div class="row"><span>success</span><span>${pct(d.success_rate)}</span></div>
      <div class="row"><span>in flight</span><span>${d.inflight}</span></div>
      <div class="row"><span>latency (ewma)</span><span>${ms(d.ewma_latency_ms)}</span></div>
      ${d.state === "open" ? `<div class="row"><span>retry in</span><span>${d.cooldown_s.toFixed(1)} s</span></div>` :
        `<div class="row"><span>opened</span><span>${d.opens}×</span></div>`}</div>`).join("");
  }

  function budgets(data) {  // GET /admin/budgets: one row per budget scope (key, team, user)
    const card = $("budgets-card");
    const list = data && data.budgets;
    if (!list || !list.length) { card.hidden = true; return; }
    card.hidden = false;
    const resets = (iso) => {
      if (!iso) return "never";
      const s = (Date.parse(iso) - Date.now()) / 1000;
      return s <= 0 ? "now" : s < 3600 ? Math.ceil(s / 60) + " min" : s < 172800 ? Math.round(s / 3600) + " h" : Math.round(s / 86400) + " d";
    };
    const meter = (b) => {  // the share used (solid) and held by requests in flight (light), capped at 100%
      const used = Math.min(b.used_ratio, 1) * 100, held = Math.max(0, Math.min(b.committed_ratio, 1) * 100 - used);
      const soft = b.soft_pct != null ? `<line class="soft" x1="${b.soft_pct}" x2="${b.soft_pct}" y1="0" y2="10"></line>` : "";
      return `<svg class="meter" viewBox="0 0 100 10" preserveAspectRatio="none"><rect class="track" x="0" y="0" width="100" height="10"></rect>
        <rect class="used ${esc(b.state)}" x="0" y="0" width="${used.toFixed(2)}" height="10"></rect>
        <rect class="held" x="${used.toFixed(2)}" y="0" width="${held.toFixed(2)}" height="10"></rect>${soft}</svg>`;
    };
    $("budgets").innerHTML = `<table class="table budgets"><tr><th>scope</th><th>period</th><th>spent</th><th>held</th><th>limit</th>
      <th class="meter-col">used</th><th></th><th>state</th><th>resets in</th></tr>
      ${list.map((b) => `<tr class="${esc(b.state)}"><td><span class="tag">${esc(b.kind)}</span> ${esc(b.key_name || b.name)}</td>
        <td>${esc(b.period)}</td><td>${usd(b.spent_usd)}</td><td>${usd(b.reserved_usd)}</td><td>${usd(b.limit_usd)}</td>
        <td class="meter-col">${meter(b)}</td><td>${pct(b.used_ratio)}</td>
        <td class="state">${b.state === "ok" ? "ok" : b.state === "soft" ? "soft limit" : "exceeded"}</td>
        <td>${resets(b.resets_at)}</td></tr>`).join("")}</table>`;
  }

  function experiments(data) {
    const card = $("experiments-card");
    const list = data && data.experiments;
    if (!list || !list.length) { card.hidden = true; return; }
    card.hidden = false;
    const metricOf = {cost: ["cost_per_request_usd", usd], latency: ["latency_p50_ms", ms], feedback: ["feedback_mean", num], judge: ["feedback_mean", num]};
    $("experiments").innerHTML = list.map((e, i) => `<div class="exp"><div class="group"><div class="head">
      <span><b>${esc(e.name)}</b> <span class="tag">group ${esc(e.group || "–")}</span> <span class="tag">unit ${esc(e.unit || "–")}</span> <span class="tag">metric ${esc(e.metric || "–")}</span></span></div>
      <div class="verdict">${esc(e.verdict || "not enough data for a verdict yet")}</div>
      <div id="exp-bars-${i}"></div>
      <table class="table"><tr><th>variant</th><th>requests</th><th>success</th><th>p50</th><th>p95</th><th>cost / request</th><th>feedback</th></tr>
      ${(e.variants || []).map((v) => `<tr><td>${esc(v.name)}</td><td>${num(v.requests)}</td><td>${pct(v.success_rate)}</td>
        <td>${ms(v.latency_p50_ms)}</td><td>${ms(v.latency_p95_ms)}</td><td>${usd(v.cost_per_request_usd)}</td>
        <td>${v.feedback_mean == null ? "–" : Number(v.feedback_mean).toFixed(2)}</td></tr>`).join("")}</table></div></div>`).join("");
    list.forEach((e, i) => {
      const [field, fmt] = metricOf[e.metric] || metricOf.cost;
      Charts.bars($(`exp-bars-${i}`), (e.variants || []).map((v) => ({label: `${v.name} · ${e.metric || "cost"}`, value: Number(v[field] || 0)})), fmt);
    });
  }

  // --- the loop ---------------------------------------------------------------------------
  const depIndex = new Map();
  const depColor = (name) => { if (!depIndex.has(name)) depIndex.set(name, depIndex.size); return depIndex.get(name); };

  async function refresh() {
    const win = $("window").value, q = `window=${win}`;
    try {
      if (!state.features) state.features = await api("/admin/stats/features");
      const f = state.features || {};
      const [s, ts, m, r, sp, b, bu, ex] = await Promise.all([
        api(`/admin/stats/summary?${q}`), api(`/admin/stats/timeseries?${q}&step=${STEPS[win]}`),
        api(`/admin/stats/models?${q}`), api(`/admin/stats/routing?${q}`),
        api(`/admin/stats/spend?${q}&by=${state.spendBy}`), api("/admin/stats/breakers"),
        f.budgets ? api(f.budgets).catch(() => null) : null,
        f.experiments ? api(f.experiments).catch(() => null) : null]);
      showMain();
      (m.deployments || []).forEach((d) => d.deployment && depColor(d.deployment));
      kpis(s); series(ts); models(m); routing(r, depColor); spend(sp); breakers(b); budgets(bu); experiments(ex);
      $("status").className = "status ok";
      $("status").textContent = "updated " + new Date().toLocaleTimeString();
      $("source").textContent = s.note ? s.note : `(this window: ${s.source})`;
    } catch (e) {
      if (e instanceof Unauthorized) {
        const had = sessionStorage.getItem(KEY);
        sessionStorage.removeItem(KEY);
        showLogin(had ? "That key was refused." : "");
        return false;
      }
      $("status").className = "status bad";
      $("status").textContent = "error: " + e.message;
    }
    return true;
  }

  function schedule() {
    clearTimeout(state.timer);
    if (state.paused) return;
    state.timer = setTimeout(async () => { if (await refresh()) schedule(); }, POLL[$("window").value]);
  }
  async function start() { if (await refresh()) schedule(); }

  // --- events -----------------------------------------------------------------------------
  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(KEY, $("key").value.trim());
    $("key").value = "";
    start();
  });
  $("logout").addEventListener("click", () => { sessionStorage.removeItem(KEY); clearTimeout(state.timer); showLogin(""); });
  $("window").addEventListener("change", start);
  $("pause").addEventListener("click", () => {
    state.paused = !state.paused;
    $("pause").textContent = state.paused ? "resume" : "pause";
    if (state.paused) { $("status").className = "status paused"; $("status").textContent = "paused"; } else start();
  });
  $("spend-tabs").addEventListener("click", (ev) => {
    const by = ev.target.dataset && ev.target.dataset.by;
    if (!by) return;
    state.spendBy = by;
    for (const b of $("spend-tabs").querySelectorAll("button")) b.classList.toggle("on", b.dataset.by === by);
    start();
  });
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
    if (state.charts) Object.values(state.charts).forEach((c) => c.build());
  });

  takeKeyFromFragment();
  start();
})();
