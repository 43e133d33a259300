// The gateway's console: plain DOM, no framework, no build step. Every call goes to the gateway's
// public REST API with a short-lived bearer token; every value reaches the page as text
// (textContent, never innerHTML), so a key named <script>…</script> shows as those characters.
"use strict";

(() => {
  // Relative to /ui/, so a path prefix added by a reverse proxy is kept.
  const API = "../api/";
  const TOKEN = "ogw.console.token"; // sessionStorage: gone with the tab, never in a URL, never a cookie
  const REFRESH_MS = 5000;
  const RANGES = { "1h": 3600e3, "24h": 86400e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3 };
  const COLORS = ["#1f6feb", "#d1242f", "#2da44e", "#bf8700", "#8250df", "#0a7b83", "#cf222e", "#57606a"];

  const $ = (id) => document.getElementById(id);
  const state = { me: null, keys: [], keyNames: new Map(), charts: {}, timer: null, editing: null, revoking: null };

  // ---- DOM helpers: text only ----
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  const fmt = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US", { maximumFractionDigits: 1 }));
  const when = (iso) => (iso ? new Date(iso).toLocaleString() : "–");
  function table(columns, rows, attrs) {
    const head = el("tr", null, columns.map((c) => el("th", { class: c.num ? "num" : null, scope: "col" }, c.title)));
    const body = rows.map((row) =>
      el("tr", null, columns.map((c) => el("td", { class: c.num ? "num" : null, "data-col": c.id }, c.cell(row)))));
    return el("table", attrs, el("thead", null, head), el("tbody", null, body));
  }
  function show(node, visible) { node.hidden = !visible; }
  function say(text) { const m = $("message"); m.textContent = text || ""; show(m, Boolean(text)); }

  // ---- the API ----
  class Unauthorized extends Error {}
  async function api(path, options = {}) {
    const token = sessionStorage.getItem(TOKEN);
    const headers = { Accept: "application/json", ...(options.headers || {}) };
    if (token && !headers.Authorization) headers.Authorization = "Bearer " + token;
    if (options.json !== undefined) headers["Content-Type"] = "application/json";
    const resp = await fetch(API + path, {
      method: options.method || "GET", headers, cache: "no-store", credentials: "omit",
      body: options.json !== undefined ? JSON.stringify(options.json) : undefined,
    });
    const body = await resp.json().catch(() => ({}));
    if (resp.status === 401) throw new Unauthorized("signed out: the token expired or the key was revoked");
    if (!resp.ok) throw new Error((body.error && (body.error.message || body.error)) || resp.statusText);
    return body;
  }
  async function guarded(work) {
    try { await work(); } catch (err) {
      if (err instanceof Unauthorized) signOut(err.message); else say(err.message);
    }
  }

  // ---- sign in and out ----
  async function signIn(event) {
    event.preventDefault();
    const input = $("api-key");
    const key = input.value.trim();
    input.value = ""; // the key itself is never kept
    say("");
    try {
      const answer = await api("auth/token", { method: "POST", headers: { Authorization: "Bearer " + key } });
      sessionStorage.setItem(TOKEN, answer.access_token);
      await start();
    } catch (err) {
      say(err instanceof Unauthorized ? "That key was not accepted." : err.message);
    }
  }
  function signOut(reason) {
    sessionStorage.removeItem(TOKEN);
    clearInterval(state.timer);
    state.me = null;
    document.querySelectorAll("[data-view]").forEach((v) => show(v, false));
    show($("tabs"), false); show($("who"), false); show($("sign-in"), true);
    say(reason || "");
    $("api-key").focus();
  }
  async function start() {
    state.me = await api("auth/key");
    const admin = state.me.role === "admin";
    document.querySelectorAll("[data-admin]").forEach((node) => show(node, admin));
    $("who-name").textContent = state.me.name;
    $("who-role").textContent = state.me.role;
    show($("sign-in"), false); show($("tabs"), true); show($("who"), true);
    if (admin) await loadKeys(); else showMyKey();
    openTab("usage");
  }

  // ---- tabs ----
  function openTab(name) {
    document.querySelectorAll("#tabs button").forEach((b) =>
      b.dataset.tab === name ? b.setAttribute("aria-current", "page") : b.removeAttribute("aria-current"));
    document.querySelectorAll("[data-view]").forEach((v) => show(v, v.id === name));
    clearInterval(state.timer);
    const load = { usage: loadUsage, live: loadLive, keys: loadKeysView, nodes: loadNodes }[name];
    guarded(load);
    if (name === "live") state.timer = setInterval(() => { if ($("live-auto").checked) guarded(loadLive); }, REFRESH_MS);
  }

  // ---- usage ----
  function usageRange() {
    const choice = $("range").value;
    if (choice === "custom") {
      const since = $("since").value, until = $("until").value;
      if (!since || !until) throw new Error("Pick both ends of the custom range.");
      return { since: new Date(since).toISOString(), until: new Date(until).toISOString() };
    }
    const until = new Date();
    return { since: new Date(until - RANGES[choice]).toISOString(), until: until.toISOString() };
  }
  async function loadUsage() {
    const params = new URLSearchParams({ ...usageRange(), split: $("split").value });
    if ($("usage-key").value) params.set("key_id", $("usage-key").value);
    const data = await api("usage?" + params);
    $("usage-range").textContent =
      `${when(data.since)} – ${when(data.until)}, by the ${data.step} (times in your time zone)`;
    drawTiles(data.totals);
    const x = data.starts.map((s) => Date.parse(s) / 1000);
    const s = data.series;
    chart("chart-requests", x, [["requests", s.requests], ["errors", s.errors]]);
    chart("chart-tokens", x, [["prompt tokens", s.prompt_tokens], ["completion tokens", s.completion_tokens]]);
    chart("chart-latency", x, [["p50 total", s.p50_response_time_ms], ["p95 total", s.p95_response_time_ms],
      ["p50 first byte", s.p50_ttfb_ms], ["p95 first byte", s.p95_ttfb_ms]]);
    $("split-caption").textContent = `Requests, stacked by ${data.split.by}`;
    stacked("chart-split", x, data.split.groups.map((g) => [label(data.split.by, g.name), g.requests]));
    const usageColumns = [
      { id: "requests", title: "Requests", num: true, cell: (r) => fmt(r.requests) },
      { id: "errors", title: "Errors", num: true, cell: (r) => fmt(r.errors) },
      { id: "tokens", title: "Tokens", num: true, cell: (r) => fmt(r.total_tokens) },
      { id: "p50", title: "p50 ms", num: true, cell: (r) => fmt(r.p50_response_time_ms) },
      { id: "p95", title: "p95 ms", num: true, cell: (r) => fmt(r.p95_response_time_ms) },
      { id: "ttfb95", title: "p95 first byte", num: true, cell: (r) => fmt(r.p95_ttfb_ms) },
    ];
    const byTable = (id, title, name) => $(id).replaceChildren(
      table([{ id: "name", title, cell: name }, ...usageColumns], data[id.replace("-", "_")], { "data-testid": id }));
    byTable("by-key", "Key", (r) => label("key", r.key_id));
    byTable("by-model", "Model", (r) => r.model ?? "(none)");
    byTable("by-node", "Node", (r) => r.node ?? "(none)");
  }
  function label(by, name) {
    if (name === null) return "(none)";
    return by === "key" ? state.keyNames.get(name) || (state.me && state.me.id === name ? state.me.name : name) : name;
  }
  function drawTiles(t) {
    const tiles = [["requests", "Requests", t.requests], ["errors", "Errors", t.errors],
      ["prompt_tokens", "Prompt tokens", t.prompt_tokens], ["completion_tokens", "Completion tokens", t.completion_tokens],
      ["p50_response_time_ms", "p50 total, ms", t.p50_response_time_ms],
      ["p95_response_time_ms", "p95 total, ms", t.p95_response_time_ms],
      ["p50_ttfb_ms", "p50 first byte, ms", t.p50_ttfb_ms], ["p95_ttfb_ms", "p95 first byte, ms", t.p95_ttfb_ms]];
    $("tiles").replaceChildren(...tiles.map(([id, title, value]) =>
      el("div", { "data-figure": id }, el("dt", null, title), el("dd", null, fmt(value)))));
  }
  function chartWidth(node) { return Math.max(260, node.clientWidth || node.parentNode.clientWidth || 400); }
  function chart(id, x, series, options = {}) {
    const node = $(id);
    if (state.charts[id]) state.charts[id].destroy();
    const opts = {
      width: chartWidth(node), height: options.height || 220,
      series: [{}, ...series.map(([name], i) => ({
        label: name, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: false,
        fill: options.fill ? COLORS[i % COLORS.length] + "55" : undefined,
      }))],
      axes: [{}, { size: 60 }], scales: { x: { time: true } }, ...(options.uplot || {}),
    };
    state.charts[id] = new uPlot(opts, [x, ...series.map(([, values]) => values)], node);
  }
  // Stacked areas: each series is drawn as the running total of itself and those below it, with the
  // cursor's legend showing the group's own value.
  function stacked(id, x, groups) {
    const top = groups.slice(0, COLORS.length - 1);
    if (groups.length > top.length) {
      const rest = x.map((_, i) => groups.slice(top.length).reduce((sum, g) => sum + g[1][i], 0));
      top.push(["others", rest]);
    }
    const running = x.map(() => 0);
    const cumulative = top.map(([name, values]) => [name, values.map((v, i) => (running[i] += v))]);
    const own = new Map(top.map(([name, values]) => [name, values]));
    chart(id, x, cumulative.reverse(), { fill: true, uplot: {
      series: [{}, ...cumulative.map(([name], i) => ({
        label: name, stroke: COLORS[(cumulative.length - 1 - i) % COLORS.length],
        fill: COLORS[(cumulative.length - 1 - i) % COLORS.length] + "88",
        value: (u, v, s, idx) => (idx === null ? "–" : fmt(own.get(name)[idx])),
      }))],
    } });
  }

  // ---- a user's own key ----
  function facts(record) {
    const rows = [["Name", record.name], ["Role", record.role], ["Requests per hour", fmt(record.rate_limit)],
      ["Burst", fmt(record.burst)], ["Requests at once", record.max_concurrent ?? "no limit"],
      ["Tokens per day", record.tokens_per_day ?? "no quota"],
      ["Models", record.models ? record.models.join(", ") : "all"], ["Expires", when(record.expires_at)]];
    return rows.flatMap(([k, v]) => [el("dt", null, k), el("dd", null, v)]);
  }
  function showMyKey() {
    $("my-key-facts").replaceChildren(...facts(state.me));
    show($("my-key"), true);
  }

  // ---- live (admin) ----
  async function loadLive() {
    const params = new URLSearchParams({ limit: "50" });
    if ($("logs-key").value) params.set("key_id", $("logs-key").value);
    if ($("logs-model").value.trim()) params.set("model", $("logs-model").value.trim());
    if ($("logs-status").value) params.set("status", $("logs-status").value);
    if ($("logs-since").value) params.set("since", new Date($("logs-since").value).toISOString());
    if ($("logs-until").value) params.set("until", new Date($("logs-until").value).toISOString());
    const [logs, backends] = await Promise.all([api("logs?" + params), api("backends")]);
    $("in-flight").textContent = fmt(backends.backends.reduce((sum, b) => sum + (b.in_flight_all ?? b.in_flight), 0));
    $("in-flight-where").textContent = processesNote(backends.processes);
    $("logs").replaceChildren(table([
      { id: "time", title: "Time", cell: (r) => when(r.created_at) },
      { id: "key", title: "Key", cell: (r) => label("key", r.api_key_id) },
      { id: "method", title: "Method", cell: (r) => r.method },
      { id: "endpoint", title: "Endpoint", cell: (r) => r.endpoint },
      { id: "model", title: "Model", cell: (r) => r.model ?? "" },
      { id: "status", title: "Status", num: true, cell: (r) => r.status_code },
      { id: "tokens", title: "Tokens", num: true, cell: (r) => fmt(r.tokens_used) },
      { id: "ms", title: "ms", num: true, cell: (r) => fmt(r.response_time_ms) },
      { id: "node", title: "Node", cell: (r) => r.node ?? "" },
      { id: "error", title: "Error", cell: (r) => r.error ?? "" },
    ], logs.logs, { "data-testid": "logs" }));
  }

  // ---- keys (admin) ----
  async function loadKeys() {
    state.keys = (await api("keys")).keys;
    state.keyNames = new Map(state.keys.map((k) => [k.id, k.name]));
    for (const id of ["usage-key", "logs-key"]) {
      const select = $(id), chosen = select.value;
      select.replaceChildren(select.options[0], ...state.keys.map((k) => el("option", { value: k.id }, k.name)));
      select.value = chosen;
    }
  }
  async function loadKeysView() {
    await loadKeys();
    const since = new Date(Date.now() - 14 * 86400e3).toISOString();
    const usage = await api("usage?" + new URLSearchParams({ since, step: "day", split: "key" }));
    const perKey = new Map(usage.split.groups.map((g) => [g.name, g.requests]));
    const x = usage.starts.map((s) => Date.parse(s) / 1000);
    const list = table([
      { id: "name", title: "Name", cell: (k) => k.name },
      { id: "prefix", title: "Prefix", cell: (k) => k.prefix },
      { id: "role", title: "Role", cell: (k) => k.role },
      { id: "usage", title: "Requests, 14 days", cell: (k) => sparkline(x, perKey.get(k.id) || x.map(() => 0)) },
      { id: "limits", title: "Limits", cell: (k) => `${fmt(k.rate_limit)}/h, burst ${fmt(k.burst)}, ` +
        `${k.max_concurrent ?? "∞"} at once, ${k.tokens_per_day ?? "∞"} tokens/day` },
      { id: "models", title: "Models", cell: (k) => (k.models ? k.models.join(", ") : "all") },
      { id: "expires", title: "Expires", cell: (k) => when(k.expires_at) },
      { id: "status", title: "Status", cell: (k) => el("span", { class: k.is_active ? null : "status-revoked" },
        k.is_active ? "active" : "revoked") },
      { id: "actions", title: "", cell: (k) => (k.is_active ? [
        el("button", { type: "button", onclick: () => openEdit(k), "aria-label": `Edit ${k.name}` }, "Edit"), " ",
        el("button", { type: "button", class: "danger", onclick: () => openRevoke(k), "aria-label": `Revoke ${k.name}` },
          "Revoke")] : "") },
    ], state.keys, { "data-testid": "key-list" });
    $("key-list").replaceChildren(list);
  }
  function sparkline(x, values) {
    const node = el("div", { class: "spark", role: "img", "aria-label": `${values.reduce((a, b) => a + b, 0)} requests` });
    // uPlot measures nothing here: the size is given, so it can draw before the node is attached.
    new uPlot({ width: 120, height: 28, cursor: { show: false }, legend: { show: false }, select: { show: false },
      axes: [{ show: false }, { show: false }], scales: { x: { time: false } },
      series: [{}, { stroke: COLORS[0], width: 1.5, fill: COLORS[0] + "33" }] }, [x, values], node);
    return node;
  }
  const FIELDS = [
    ["name", "Name", "text"], ["role", "Role", "role"], ["rate_limit", "Requests per hour", "number"],
    ["burst", "Burst (empty: a minute's worth)", "number"], ["max_concurrent", "Requests at once (empty: no limit)", "number"],
    ["tokens_per_day", "Tokens per day (empty: no quota)", "number"], ["models", "Models, comma-separated (empty: all)", "text"],
    ["expires_at", "Expires (empty: never)", "datetime-local"],
  ];
  function localInput(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return new Date(d - d.getTimezoneOffset() * 60e3).toISOString().slice(0, 16);
  }
  function fillKeyForm(form, record, submitLabel) {
    const inputs = FIELDS.map(([name, title, type]) => {
      const value = record ? record[name] : null;
      const id = `${form.id}-${name}`;
      const input = type === "role"
        ? el("select", { id, name }, ["user", "admin"].map((r) => el("option", { value: r, selected: value === r }, r)))
        : el("input", { id, name, type, min: type === "number" ? 1 : null, required: name === "name",
            value: name === "models" ? (value || []).join(", ") : name === "expires_at" ? localInput(value) : value ?? "" });
      return el("label", { for: id }, title, input);
    });
    const buttons = el("div", { class: "buttons" },
      record ? el("button", { type: "button", onclick: () => $("edit-dialog").close() }, "Cancel") : null,
      el("button", { type: "submit" }, submitLabel));
    form.replaceChildren(...inputs, buttons);
  }
  function readKeyForm(form, creating) {
    const data = {};
    for (const [name, , type] of FIELDS) {
      const raw = form.elements[name].value.trim();
      if (type === "number") {
        if (raw) data[name] = Number(raw);
        else if (name !== "rate_limit") data[name] = null;
      } else if (name === "models") {
        data.models = raw ? raw.split(",").map((m) => m.trim()).filter(Boolean) : null;
      } else if (name === "expires_at") {
        data.expires_at = raw ? new Date(raw).toISOString() : null;
      } else data[name] = raw;
    }
    if (creating) for (const name of ["burst", "max_concurrent", "tokens_per_day"]) if (data[name] === null) delete data[name];
    return data;
  }
  async function createKey(event) {
    event.preventDefault();
    const form = event.target;
    await guarded(async () => {
      const created = await api("keys", { method: "POST", json: readKeyForm(form, true) });
      $("new-key-value").textContent = created.key;
      show($("new-key"), true);
      fillKeyForm(form, null, "Create");
      $("create-key").open = false;
      say(`Key ${created.name} created.`);
      await loadKeysView();
      $("copy-key").focus();
    });
  }
  async function copyKey() {
    const text = $("new-key-value").textContent;
    try { await navigator.clipboard.writeText(text); say("Copied."); } catch {
      // No clipboard API outside a secure context (plain HTTP on another host): copy the selection the
      // older way, which browsers still allow for a click; else leave it selected for Ctrl+C.
      const range = document.createRange(); range.selectNodeContents($("new-key-value"));
      const selection = getSelection(); selection.removeAllRanges(); selection.addRange(range);
      say(document.execCommand("copy") ? "Copied." : "Selected: press Ctrl+C to copy.");
    }
  }
  function openEdit(record) {
    state.editing = record;
    $("edit-title").textContent = `Edit ${record.name}`;
    fillKeyForm($("edit-form"), record, "Save");
    $("edit-dialog").showModal();
  }
  async function saveEdit(event) {
    event.preventDefault();
    await guarded(async () => {
      await api("keys/" + state.editing.id, { method: "PATCH", json: readKeyForm($("edit-form"), false) });
      $("edit-dialog").close();
      say(`Key ${state.editing.name} saved.`);
      await loadKeysView();
    });
  }
  function openRevoke(record) {
    state.revoking = record;
    $("revoke-name").textContent = record.name;
    $("revoke-dialog").showModal();
  }
  // Plain buttons rather than <form method="dialog">: the CSP's form-action 'none' blocks that form too.
  async function confirmRevoke() {
    const record = state.revoking;
    state.revoking = null;
    $("revoke-dialog").close();
    if (!record) return;
    await guarded(async () => {
      await api("keys/" + record.id, { method: "DELETE" });
      say(`Key ${record.name} revoked.`);
      await loadKeysView();
    });
  }

  // ---- nodes (admin) ----
  function processesNote(processes) {
    // The *_all figures add up every live gateway process; without the database, only the one answering.
    if (processes === undefined) return "";  // a gateway of a version before these figures
    if (processes === null) return "(this gateway process only: the database is not answering)";
    return processes === 1 ? "(one gateway process)" : `(over ${processes} gateway processes)`;
  }

  async function loadNodes() {
    const data = await api("backends");
    $("nodes-where").textContent = processesNote(data.processes);
    $("node-list").replaceChildren(table([
      { id: "name", title: "Node", cell: (n) => n.name },
      { id: "url", title: "URL", cell: (n) => n.url },
      { id: "status", title: "Health", cell: (n) => n.status + (n.reason ? ` (${n.reason})` : "") },
      { id: "in_flight", title: "In flight", num: true, cell: (n) => `${n.in_flight_all ?? n.in_flight} / ${n.capacity ?? "∞"}` },
      { id: "queued", title: "Queued", num: true, cell: (n) => fmt(n.queued_all ?? n.queued ?? null) },
      { id: "requests", title: "Requests", num: true, cell: (n) => fmt(n.requests) },
      { id: "failures", title: "Failures", num: true, cell: (n) => fmt(n.failures_total) },
      { id: "models", title: "Models pulled", cell: (n) => n.models.join(", ") },
      { id: "loaded", title: "Loaded", cell: (n) => n.loaded.join(", ") },
      { id: "probe", title: "Last probe", cell: (n) => when(n.last_probe) },
    ], data.backends, { "data-testid": "node-list" }));
  }

  // ---- wiring ----
  function init() {
    $("sign-in-form").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", () => signOut("Signed out."));
    document.querySelectorAll("#tabs button").forEach((b) => b.addEventListener("click", () => openTab(b.dataset.tab)));
    $("usage-form").addEventListener("submit", (e) => { e.preventDefault(); guarded(loadUsage); });
    $("range").addEventListener("change", () => show($("custom-range"), $("range").value === "custom"));
    $("logs-form").addEventListener("submit", (e) => { e.preventDefault(); guarded(loadLive); });
    $("create-form").addEventListener("submit", createKey);
    $("edit-form").addEventListener("submit", saveEdit);
    $("revoke-confirm").addEventListener("click", confirmRevoke);
    $("revoke-cancel").addEventListener("click", () => { state.revoking = null; $("revoke-dialog").close(); });
    $("copy-key").addEventListener("click", copyKey);
    fillKeyForm($("create-form"), null, "Create");
    if (sessionStorage.getItem(TOKEN)) guarded(start); else signOut();
  }
  init();
})();
