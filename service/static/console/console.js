/* dropprice operator console: plain JavaScript, no library, no build step.
 *
 * Every call goes to the service's own JSON routes with the operator's key in
 * X-API-Key (kept in sessionStorage: this tab only) and the person's name in
 * X-Actor on changes, so the audit names who applied, approved or rolled back.
 * The board polls /v1/console/board every BOARD_POLL_MS while it is shown.
 */
"use strict";

const BOARD_POLL_MS = 1000;
const SKU_POLL_MS = 2000;
const PAGE_SIZE = 50;
const $ = (id) => document.getElementById(id);

const state = {
  key: sessionStorage.getItem("dp.key") || "",
  name: sessionStorage.getItem("dp.name") || "",
  role: "",
  canRollback: false,
  sort: "sku",
  desc: false,
  offset: 0,
  filter: "",
  drop: "",
  boardTimer: null,
  skuTimer: null,
  lastUnits: new Map(),
  sku: null,
  preview: null,
  rollbackTo: null,
};

// ------------------------------------------------------------------ HTTP
class ApiError extends Error {
  constructor(status, body) {
    super(ApiError.describe(status, body));
    this.status = status;
    this.body = body;
  }
  static describe(status, body) {
    if (body && Array.isArray(body.errors) && body.errors.length) {
      return body.errors.map((d) => (d.field ? `${d.field}: ${d.message}` : d.message || d.text)).join("; ");
    }
    if (body && body.detail) return String(body.detail);
    return `HTTP ${status}`;
  }
}

async function api(method, path, body, extraHeaders) {
  const headers = { "X-API-Key": state.key, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && state.name) headers["X-Actor"] = state.name;
  Object.assign(headers, extraHeaders || {});
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  let data = null;
  try { data = await res.json(); } catch (_e) { data = null; }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

// ------------------------------------------------------------------ formatting
const money = (v, cur) => (v === null || v === undefined ? "–" : `${Number(v).toFixed(2)}${cur && cur !== "USD" ? " " + cur : ""}`);
const pct = (v) => (v === null || v === undefined ? "–" : `${(100 * v).toFixed(1)} %`);
const num = (v, d = 2) => (v === null || v === undefined ? "–" : Number(v).toFixed(d));
function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const s = Math.max(0, Math.round(seconds));
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  if (d) return `${d} d ${h} h`;
  if (h) return `${h} h ${m} min`;
  return m ? `${m} min ${s % 60} s` : `${s} s`;
}
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined) node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}
function setMsg(node, text, kind) {
  node.textContent = text || "";
  node.className = "msg" + (kind ? " " + kind : "");
}

// ------------------------------------------------------------------ session
async function signIn(key, name) {
  state.key = key;
  state.name = name;
  try {
    const who = await api("GET", "/v1/console/session");
    state.role = who.role;
    state.canRollback = who.can_rollback;
    sessionStorage.setItem("dp.key", key);
    sessionStorage.setItem("dp.name", name);
    $("login").hidden = true;
    $("nav").hidden = false;
    $("who").hidden = false;
    $("who-name").textContent = name;
    $("who-role").textContent = who.role;
    route();
    return true;
  } catch (err) {
    state.key = "";
    sessionStorage.removeItem("dp.key");
    const text = err instanceof ApiError && err.status === 401
      ? "Unknown key: paste an operator or admin key."
      : err.message;
    setMsg($("login-msg"), text, "error");
    showLogin();
    return false;
  }
}

function showLogin() {
  stopTimers();
  $("login").hidden = false;
  $("nav").hidden = true;
  $("who").hidden = true;
  for (const v of document.querySelectorAll(".view")) v.hidden = true;
  $("login-name").value = state.name;
}

function signOut() {
  sessionStorage.removeItem("dp.key");
  state.key = "";
  setMsg($("login-msg"), "Signed out.");
  showLogin();
}

function handleAuthError(err) {
  if (err instanceof ApiError && (err.status === 401 || err.status === 403) && err.body
      && err.body.code === "unauthorized") {
    setMsg($("login-msg"), "The key is no longer accepted: sign in again.", "error");
    signOut();
    return true;
  }
  return false;
}

function stopTimers() {
  clearTimeout(state.boardTimer);
  clearTimeout(state.skuTimer);
  state.boardTimer = state.skuTimer = null;
}

// ------------------------------------------------------------------ router
function route() {
  if (!state.key) return showLogin();
  stopTimers();
  const hash = location.hash || "#/board";
  const [path, query] = hash.slice(1).split("?");
  const parts = path.split("/").filter(Boolean);
  const view = parts[0] || "board";
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== `view-${view}`;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.view === view);
  if (view === "board") pollBoard();
  else if (view === "sku") openSku(decodeURIComponent(parts[1] || ""), new URLSearchParams(query || "").get("market"));
  else if (view === "approvals") loadApprovals();
  else if (view === "audit") loadAudit();
  else if (view === "versions") loadVersions();
  refreshApprovalCount();
}

// ------------------------------------------------------------------ board
async function pollBoard() {
  clearTimeout(state.boardTimer);
  if ($("view-board").hidden) return;
  try {
    const params = new URLSearchParams({
      sort: state.sort, desc: String(state.desc), offset: String(state.offset), limit: String(PAGE_SIZE),
    });
    if (state.filter) params.set("q", state.filter);
    if (state.drop) params.set("drop", state.drop);
    const board = await api("GET", `/v1/console/board?${params}`);
    renderBoard(board);
  } catch (err) {
    if (handleAuthError(err)) return;
    $("board-updated").textContent = `update failed: ${err.message}`;
  }
  if (!$("view-board").hidden) state.boardTimer = setTimeout(pollBoard, BOARD_POLL_MS);
}

function renderBoard(board) {
  const drops = $("drops");
  drops.replaceChildren(...board.drops.map((d) => {
    const w = d.window;
    const when = w.state === "open" ? `closes in ${duration(w.seconds_left)}`
      : w.state === "next" ? `opens in ${duration(w.seconds_left)}` : `closed ${new Date(w.end).toLocaleString()}`;
    return el("div", { class: "drop-card", "data-drop": d.id },
      el("h3", {}, d.name || d.id),
      el("div", {}, el("span", { class: `tag ${w.state}` }, w.state), " ", when),
      el("div", { class: "muted" }, `${d.id} · ${d.skus} SKUs · ${d.markets.join(", ")}`));
  }));
  const select = $("board-drop");
  const ids = board.drops.map((d) => d.id);
  if ([...select.options].slice(1).map((o) => o.value).join() !== ids.join()) {
    select.replaceChildren(el("option", { value: "" }, "all drops"), ...ids.map((id) => el("option", { value: id }, id)));
    select.value = ids.includes(state.drop) ? state.drop : "";
  }
  const body = $("board-rows");
  body.replaceChildren(...board.rows.map((r) => {
    const key = `${r.sku}|${r.market}`;
    const before = state.lastUnits.get(key);
    state.lastUnits.set(key, r.units_left);
    const href = `#/sku/${encodeURIComponent(r.sku)}?market=${encodeURIComponent(r.market)}`;
    const tr = el("tr", { "data-sku": r.sku, "data-market": r.market },
      el("td", {}, el("a", { href }, r.sku), r.name ? el("div", { class: "muted" }, r.name) : ""),
      el("td", { class: "wrap" }, r.drop),
      el("td", { class: "wrap" }, r.market),
      el("td", { class: "num price" }, money(r.price, r.currency)),
      el("td", {}, el("span", { class: `tag ${r.source}` }, r.source)),
      el("td", { class: "num units" }, r.units_left === null ? "–" : `${r.units_left} / ${r.start_stock ?? "?"}`),
      el("td", { class: "num" }, pct(r.sell_through)),
      el("td", {}, r.bound_by || (r.source === "surface" ? "none" : "–")),
      el("td", { class: "num" }, r.elasticity === null ? "–"
        : `${num(r.elasticity)}${r.interval95 ? ` (${num(r.interval95[0])} to ${num(r.interval95[1])})` : ""}`),
      el("td", { class: "num", title: r.intensity_source || "" }, r.intensity === null ? "–"
        : `${num(r.intensity)}${r.intensity_source === "at_publish" ? "*" : ""}`));
    if (before !== undefined && before !== r.units_left) tr.classList.add("flash");
    return tr;
  }));
  for (const th of document.querySelectorAll("#board th[data-sort]")) {
    th.classList.toggle("sorted-asc", th.dataset.sort === state.sort && !state.desc);
    th.classList.toggle("sorted-desc", th.dataset.sort === state.sort && state.desc);
  }
  const empty = $("board-empty");
  if (!board.drops.length) {
    empty.hidden = false;
    empty.textContent = "No drops yet: write one in configs/drops/ and run `dropprice config apply configs/` (or PUT /v1/drops/{id}).";
  } else if (!board.rows.length) {
    empty.hidden = false;
    empty.textContent = "No SKU matches this filter.";
  } else if (!board.live_version) {
    empty.hidden = false;
    empty.textContent = "No re-fit yet: list prices are served. Run `dropprice refit` (or `dropprice worker`) to publish price surfaces.";
  } else {
    empty.hidden = true;
  }
  const last = Math.min(board.offset + board.rows.length, board.total);
  $("page-info").textContent = board.total ? `${board.offset + 1}–${last} of ${board.total}` : "0 rows";
  $("page-prev").disabled = board.offset === 0;
  $("page-next").disabled = last >= board.total;
  $("board-updated").textContent = `${board.stale ? "STALE (Redis away) · " : ""}updated ${new Date(board.generated_at).toLocaleTimeString()}`
    + (board.live_version ? ` · live ${board.live_version}` : "");
}

// ------------------------------------------------------------------ heat map
function colour(t) {
  // low prices blue, high prices red (HSL 220 -> 0), readable on white.
  const h = 220 - 220 * Math.max(0, Math.min(1, t));
  return `hsl(${h}, 70%, ${55 - 10 * Math.abs(t - 0.5)}%)`;
}

function drawSurface(canvas, grid, opts) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height;
  ctx.clearRect(0, 0, W, H);
  const rows = grid.length, cols = rows ? grid[0].length : 0;
  if (!rows || !cols) return;
  const pad = { l: 44, r: 8, t: 8, b: 26 };
  const w = W - pad.l - pad.r, h = H - pad.t - pad.b;
  const lo = opts.lo, hi = opts.hi, span = hi - lo || 1;
  const cw = w / cols, ch = h / rows;
  for (let n = 0; n < rows; n++) {
    for (let t = 0; t < cols; t++) {
      ctx.fillStyle = colour((grid[n][t] - lo) / span);
      // units left grow upwards; time left shrinks to the right
      ctx.fillRect(pad.l + t * cw, pad.t + (rows - 1 - n) * ch, Math.ceil(cw), Math.ceil(ch));
    }
  }
  if (opts.cell) {
    const { units_left: n, period: t } = opts.cell;
    const x = pad.l + t * cw, y = pad.t + (rows - 1 - n) * ch;
    const size = Math.max(6, Math.min(cw, ch));
    ctx.lineWidth = 2;
    ctx.strokeStyle = "#000";
    ctx.strokeRect(x + cw / 2 - size / 2 - 2, y + ch / 2 - size / 2 - 2, size + 4, size + 4);
    ctx.strokeStyle = "#fff";
    ctx.strokeRect(x + cw / 2 - size / 2, y + ch / 2 - size / 2, size, size);
  }
  ctx.fillStyle = "#444";
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillText(String(rows - 1), 4, pad.t + 10);
  ctx.fillText("0", 4, pad.t + h);
  ctx.save();
  ctx.translate(12, pad.t + h / 2 + 24);
  ctx.rotate(-Math.PI / 2);
  ctx.fillText("units left", 0, 0);
  ctx.restore();
  ctx.fillText(opts.startLabel || "now", pad.l, H - 8);
  const endLabel = opts.endLabel || "end";
  ctx.fillText(endLabel, W - pad.r - ctx.measureText(endLabel).width, H - 8);
  ctx.fillText("time →", pad.l + w / 2 - 16, H - 8);
  canvas._geom = { pad, cw, ch, rows, cols, grid };
}

function legend(node, lo, hi, cur) {
  const bar = el("canvas", { width: 160, height: 12 });
  const ctx = bar.getContext("2d");
  for (let i = 0; i < 160; i++) { ctx.fillStyle = colour(i / 159); ctx.fillRect(i, 0, 1, 12); }
  node.replaceChildren(money(lo, cur), bar, money(hi, cur), el("span", { class: "muted" }, " · framed: the cell served now"));
}

// ------------------------------------------------------------------ SKU page
async function openSku(sku, market) {
  state.sku = { sku, market };
  state.preview = null;
  $("preview-out").hidden = true;
  setMsg($("preview-msg"), "");
  setMsg($("apply-msg"), "");
  $("refit-msg").textContent = "";
  await refreshSku(true);
}

async function refreshSku(first) {
  clearTimeout(state.skuTimer);
  if ($("view-sku").hidden || !state.sku) return;
  const { sku, market } = state.sku;
  const q = market ? `?market=${encodeURIComponent(market)}` : "";
  try {
    const data = await api("GET", `/v1/console/skus/${encodeURIComponent(sku)}${q}`);
    state.sku.market = data.market;
    state.sku.data = data;
    renderSku(data, first);
    if (data.surface) {
      try {
        const ex = await api("GET", `/v1/skus/${encodeURIComponent(sku)}/explain?market=${encodeURIComponent(data.market)}`);
        renderExplain(ex, data);
      } catch (err) {
        $("explain-text").textContent = `explain unavailable: ${err.message}`;
      }
    }
  } catch (err) {
    if (handleAuthError(err)) return;
    $("sku-title").textContent = sku;
    $("sku-sub").textContent = err.message;
  }
  if (!$("view-sku").hidden) state.skuTimer = setTimeout(() => refreshSku(false), SKU_POLL_MS);
}

function renderSku(d, first) {
  $("sku-title").textContent = `${d.sku}${d.name ? " · " + d.name : ""}`;
  const w = d.window;
  const win = !w ? "" : w.state === "open" ? `window open, closes in ${duration(w.seconds_left)}`
    : w.state === "next" ? `next window opens in ${duration(w.seconds_left)}` : "window closed";
  $("sku-sub").textContent = `${d.drop} · ${d.market} · list ${money(d.list_price, d.currency)} · `
    + `${d.units_left ?? "?"} of ${d.start_stock ?? "?"} units left · ${win}`;
  const canvas = $("heatmap");
  if (d.surface) {
    const flat = d.surface.price.flat();
    const lo = Math.min(...flat), hi = Math.max(...flat);
    const end = new Date(new Date(d.surface.period_start).getTime() + d.surface.period_seconds * 1000 * d.surface.price[0].length);
    drawSurface(canvas, d.surface.price, {
      lo, hi, cell: d.surface.cell,
      startLabel: new Date(d.surface.period_start).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }),
      endLabel: end.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }),
    });
    legend($("heatmap-legend"), lo, hi, d.currency);
  } else {
    canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
    $("heatmap-legend").textContent = "";
    $("explain-text").textContent = `No re-fit yet: the list price ${money(d.list_price, d.currency)} is served. `
      + "Run `dropprice refit` (or queue one below) to publish a price surface.";
    $("explain-reasons").replaceChildren();
  }
  drawTimeline($("timeline"), d);
  if (first) prefillPreview(d);
}

function renderExplain(ex, d) {
  const cur = d.currency;
  const served = ex.served.price;
  const free = ex.optimum.unconstrained;
  let text;
  if (ex.bound_by && ex.bound_by !== "held") {
    text = `Held at the ${ex.bound_by.replace(/_/g, " ")} ${money(served, cur)}`
      + (free !== undefined ? `; the optimum is ${money(free, cur)}.` : ".");
  } else if (ex.bound_by === "held") {
    text = `Held at ${money(served, cur)} by the time rules (no change allowed yet)`
      + (free !== undefined ? `; the optimum is ${money(free, cur)}.` : ".");
  } else {
    text = `At the optimum ${money(served, cur)}: no guardrail binds.`;
  }
  const e = ex.elasticity;
  const parts = [];
  if (e.beta !== null && e.beta !== undefined) {
    parts.push(`elasticity ${num(e.beta)}` + (e.interval95 ? ` (95 %: ${num(e.interval95[0])} to ${num(e.interval95[1])})` : "")
      + (e.replaced ? ", a fallback: the fit was out of range" : ""));
  }
  parts.push(`intensity ${num(ex.intensity.now)} (${ex.intensity.source === "events" ? "from the events now" : "forecast"})`);
  parts.push(`${ex.units_left} units left`);
  if (ex.time_left.seconds_left !== undefined && ex.time_left.seconds_left !== null) {
    parts.push(ex.time_left.window_open ? `${duration(ex.time_left.seconds_left)} left in the window` : "window not open");
  }
  $("explain-text").replaceChildren(el("b", {}, text), el("br"), parts.join(" · "));
  $("explain-reasons").replaceChildren(...ex.reasons.map((r) => el("li", {}, r)));
}

function drawTimeline(canvas, d) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height;
  ctx.clearRect(0, 0, W, H);
  const sales = d.sales, signals = d.signals;
  const empty = $("timeline-empty");
  if (!sales.length && !signals.length) {
    empty.hidden = false;
    empty.textContent = "No sales or events yet for this SKU in this market.";
    return;
  }
  empty.hidden = true;
  const times = [...sales.map((s) => +new Date(s.ts)), ...signals.map((s) => +new Date(s.ts)), Date.now()];
  if (d.window && d.window.start) times.push(+new Date(d.window.start));
  if (d.window && d.window.end) times.push(+new Date(d.window.end));
  const t0 = Math.min(...times), t1 = Math.max(...times);
  const pad = { l: 50, r: 50, t: 14, b: 24 };
  const x = (t) => pad.l + ((t - t0) / (t1 - t0 || 1)) * (W - pad.l - pad.r);
  const prices = sales.filter((s) => s.unit_price !== null).map((s) => s.unit_price);
  const pLo = prices.length ? Math.min(...prices) * 0.95 : 0, pHi = prices.length ? Math.max(...prices) * 1.05 : 1;
  const yP = (p) => pad.t + (1 - (p - pLo) / (pHi - pLo || 1)) * (H - pad.t - pad.b);
  const units = sales.map((s) => s.units_left).filter((u) => u !== null);
  const uHi = Math.max(d.start_stock || 0, ...units, 1);
  const yU = (u) => pad.t + (1 - u / uHi) * (H - pad.t - pad.b);
  if (d.window && d.window.start) {
    ctx.fillStyle = "#eef6ee";
    ctx.fillRect(x(+new Date(d.window.start)), pad.t, x(+new Date(d.window.end)) - x(+new Date(d.window.start)), H - pad.t - pad.b);
  }
  ctx.strokeStyle = "#c77d00";
  ctx.fillStyle = "#c77d00";
  ctx.font = "11px system-ui, sans-serif";
  for (const s of signals) {
    const xs = x(+new Date(s.ts));
    ctx.beginPath(); ctx.moveTo(xs, pad.t); ctx.lineTo(xs, H - pad.b); ctx.stroke();
    ctx.fillText(s.type, xs + 3, pad.t + 10);
  }
  ctx.strokeStyle = "#888";
  ctx.beginPath();
  let first = true;
  for (const s of sales) {
    if (s.units_left === null) continue;
    const xs = x(+new Date(s.ts)), ys = yU(s.units_left);
    if (first) { ctx.moveTo(xs, ys); first = false; } else ctx.lineTo(xs, ys);
  }
  if (!first && d.units_left !== null) ctx.lineTo(x(Date.now()), yU(d.units_left));
  ctx.stroke();
  ctx.fillStyle = "#2f5bd3";
  for (const s of sales) {
    if (s.unit_price === null || s.kind !== "sale") continue;
    ctx.beginPath(); ctx.arc(x(+new Date(s.ts)), yP(s.unit_price), 2.5 + Math.min(4, s.quantity / 2), 0, 2 * Math.PI); ctx.fill();
  }
  ctx.fillStyle = "#444";
  ctx.fillText(money(pHi, d.currency), 2, pad.t + 8);
  ctx.fillText(money(pLo, d.currency), 2, H - pad.b);
  ctx.fillText(`${uHi} u`, W - pad.r + 4, pad.t + 8);
  ctx.fillText("0 u", W - pad.r + 4, H - pad.b);
  ctx.fillText(new Date(t0).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }), pad.l, H - 6);
  const endLabel = new Date(t1).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  ctx.fillText(endLabel, W - pad.r - ctx.measureText(endLabel).width, H - 6);
  ctx.fillText("● charged price   — units left   | events   ▒ window", pad.l + 200, H - 6);
}

function prefillPreview() {
  for (const id of ["pv-floor", "pv-ceiling", "pv-maxchange", "pv-prior-mean", "pv-prior-sd"]) $(id).value = "";
}

function previewBody() {
  const body = { market: state.sku.market };
  const rails = {};
  const f = $("pv-floor").value, c = $("pv-ceiling").value, m = $("pv-maxchange").value;
  if (f !== "") rails.floor = Number(f);
  if (c !== "") rails.ceiling = Number(c);
  if (m !== "") rails.max_change_pct = Number(m);
  if (Object.keys(rails).length) body.guardrails = rails;
  const pm = $("pv-prior-mean").value, ps = $("pv-prior-sd").value;
  if (pm !== "" || ps !== "") body.category_prior = { mean: Number(pm || 0), sd: Number(ps || 1) };
  return body;
}

async function runPreview(ev) {
  ev.preventDefault();
  const body = previewBody();
  setMsg($("apply-msg"), "");
  setMsg($("preview-msg"), "solving…");
  try {
    const p = await api("POST", `/v1/skus/${encodeURIComponent(state.sku.sku)}/preview`, body);
    state.preview = { body, result: p };
    renderPreview(p);
    setMsg($("preview-msg"), `candidate price now ${money(p.candidate.price_now)} (live ${money(p.live.price_now)})`
      + (p.candidate.bound_by ? `, bound by the ${p.candidate.bound_by}` : ""), "ok");
    const applicable = !!body.guardrails && !body.category_prior;
    $("apply-btn").disabled = !applicable;
    $("apply-btn").title = applicable ? "" : "category priors are applied with `dropprice config apply` (categories.yaml)";
  } catch (err) {
    if (handleAuthError(err)) return;
    $("preview-out").hidden = true;
    setMsg($("preview-msg"), err.status === 409 ? "No re-fit yet: run `dropprice refit` to publish a surface to preview against."
      : err.message, "error");
  }
}

function renderPreview(p) {
  $("preview-out").hidden = false;
  const all = [...p.live.surface.flat(), ...p.candidate.surface.flat()];
  const lo = Math.min(...all), hi = Math.max(...all);
  const cell = { units_left: Math.min(p.live.units_now, p.live.surface.length - 1), period: p.live.period_now };
  drawSurface($("pv-live"), p.live.surface, { lo, hi, cell });
  drawSurface($("pv-cand"), p.candidate.surface, { lo, hi, cell: { ...cell, units_left: Math.min(p.candidate.units_now, p.candidate.surface.length - 1), period: p.candidate.period_now } });
  const row = (name, o) => el("tr", { "data-row": name }, el("td", {}, name), el("td", { class: "num" }, money(o.price_now)),
    el("td", { class: "num" }, money(o.expected_revenue)), el("td", { class: "num" }, pct(o.sell_through)),
    el("td", { class: "num" }, num(o.expected_units_left, 1)));
  $("preview-table").tBodies[0].replaceChildren(row("live", p.live), row("candidate", p.candidate));
}

async function applyPreview() {
  if (!state.preview || !state.preview.body.guardrails) return;
  const { sku } = state.sku;
  const drop = state.sku.data.drop;
  $("apply-btn").disabled = true;
  setMsg($("apply-msg"), "applying…");
  try {
    const authored = await api("GET", `/v1/console/drops/${encodeURIComponent(drop)}`);
    const d = authored.drop;
    const entry = (d.skus || []).find((s) => s.sku === sku);
    if (!entry) throw new Error(`SKU ${sku} is not in drop ${drop}`);
    entry.guardrails = Object.assign({}, entry.guardrails || {}, state.preview.body.guardrails);
    const q = authored.config_version !== null ? `?expect_version=${authored.config_version}` : "";
    const note = `console: ${sku} ${Object.entries(state.preview.body.guardrails).map(([k, v]) => `${k}=${v}`).join(", ")}`;
    const res = await api("PUT", `/v1/drops/${encodeURIComponent(drop)}${q}${q ? "&" : "?"}note=${encodeURIComponent(note)}`, d);
    setMsg($("apply-msg"), `Applied by ${state.name}: config version ${res.version} is live`
      + (res.changes.length ? ` (${res.changes.join("; ")})` : " (no change)")
      + ". Prices follow at the next re-fit.", "ok");
  } catch (err) {
    if (handleAuthError(err)) return;
    setMsg($("apply-msg"), `not applied: ${err.message}`, "error");
    $("apply-btn").disabled = false;
  }
}

async function queueRefit() {
  try {
    const r = await api("POST", "/v1/admin/refit", { force: true });
    $("refit-msg").textContent = `re-fit ${r.id} queued; \`dropprice worker\` runs it at its next tick`;
  } catch (err) {
    if (handleAuthError(err)) return;
    $("refit-msg").textContent = err.message;
  }
}

// ------------------------------------------------------------------ approvals
async function refreshApprovalCount() {
  try {
    const a = await api("GET", "/v1/admin/approvals");
    $("approvals-count").textContent = a.approvals.length ? String(a.approvals.length) : "";
  } catch (_e) { /* the count is a hint only */ }
}

async function loadApprovals() {
  const box = $("approvals");
  try {
    const a = await api("GET", "/v1/admin/approvals");
    $("approvals-count").textContent = a.approvals.length ? String(a.approvals.length) : "";
    if (!a.approvals.length) {
      box.replaceChildren(el("p", { class: "empty" }, "Nothing waiting for approval. A re-fit holds a price move "
        + "beyond the drop's approval_band_pct here until someone approves or rejects it."));
      return;
    }
    box.replaceChildren(...a.approvals.map(renderApproval));
  } catch (err) {
    if (handleAuthError(err)) return;
    box.replaceChildren(el("p", { class: "msg error" }, err.message));
  }
}

function renderApproval(a) {
  const note = el("input", { type: "text", placeholder: "note (optional)", maxlength: "500" });
  const msg = el("span", { class: "msg" });
  const decide = async (decision) => {
    try {
      const r = await api("POST", `/v1/admin/approvals/${encodeURIComponent(a.id)}`, { decision, note: note.value });
      setMsg(msg, `${r.status} by ${r.decided_by}${r.version ? `: version ${r.version} is live` : ""}`, "ok");
      for (const b of card.querySelectorAll("button")) b.disabled = true;
      refreshApprovalCount();
    } catch (err) {
      if (handleAuthError(err)) return;
      setMsg(msg, err.message, "error");
    }
  };
  const table = el("table", { class: "grid small" },
    el("thead", {}, el("tr", {}, el("th", {}, "SKU"), el("th", {}, "market"), el("th", { class: "num" }, "before"),
      el("th", { class: "num" }, "after"), el("th", {}, "why it waits"))),
    el("tbody", {}, ...a.changes.map((c) => el("tr", {},
      el("td", {}, c.sku), el("td", {}, c.market), el("td", { class: "num" }, money(c.live_price)),
      el("td", { class: `num ${c.change_pct > 0 ? "up" : "down"}` }, money(c.new_price)),
      el("td", {}, `moves ${c.change_pct > 0 ? "+" : ""}${num(c.change_pct, 1)} %, beyond the approval band of ${c.band_pct} %`)))));
  const card = el("div", { class: "approval", "data-approval": a.id },
    el("div", {}, el("b", {}, a.id), el("span", { class: "muted" }, ` · re-fit ${a.refit_id} · held ${new Date(a.created_at).toLocaleString()}`)),
    table,
    el("div", { class: "actions" }, note,
      el("button", { type: "button", class: "approve", onclick: () => decide("approve") }, `Approve as ${state.name}`),
      el("button", { type: "button", class: "secondary reject", onclick: () => decide("reject") }, "Reject"),
      msg));
  return card;
}

// ------------------------------------------------------------------ audit
async function loadAudit() {
  const kind = $("audit-kind").value;
  const params = new URLSearchParams({ limit: "1000" });
  if (kind) params.set("kind", kind);
  try {
    const page = await api("GET", `/v1/audit?${params}`);
    state.audit = page.records.slice().reverse();
    renderAudit();
  } catch (err) {
    if (handleAuthError(err)) return;
    $("audit-empty").hidden = false;
    $("audit-empty").textContent = err.message;
  }
}

function auditSummary(r) {
  const d = r.detail || {};
  if (d.version && d.surfaces !== undefined) return `version ${d.version} (${d.surfaces} surfaces)`;
  if (d.from !== undefined && d.to !== undefined) return `${d.from} → ${d.to}`;
  if (d.approval_id) return `approval ${d.approval_id}${d.version ? ` → ${d.version}` : ""}${d.note ? ` · ${d.note}` : ""}`;
  if (Array.isArray(d.changes)) return d.changes.slice(0, 4).join("; ") + (d.changes.length > 4 ? " …" : "");
  if (d.note) return d.note;
  return JSON.stringify(d).slice(0, 160);
}

function renderAudit() {
  const needle = $("audit-filter").value.toLowerCase();
  const rows = (state.audit || []).filter((r) => !needle || `${r.kind} ${r.actor} ${JSON.stringify(r.detail)}`.toLowerCase().includes(needle));
  $("audit-rows").replaceChildren(...rows.slice(0, 300).map((r) => el("tr", { "data-kind": r.kind },
    el("td", {}, new Date(r.at).toLocaleString()), el("td", {}, r.kind), el("td", { class: "actor" }, r.actor),
    el("td", {}, auditSummary(r)))));
  $("audit-empty").hidden = rows.length > 0;
  $("audit-empty").textContent = "No audit records match. Config applies, publishes, rollbacks and approvals appear here.";
}

// ------------------------------------------------------------------ versions
async function loadVersions() {
  $("rollback-box").hidden = true;
  try {
    const v = await api("GET", "/v1/console/versions");
    $("versions-rows").replaceChildren(...v.versions.map((x) => el("tr", { "data-version": x.version },
      el("td", {}, x.version, x.live ? el("span", { class: "tag open" }, " live") : ""),
      el("td", {}, new Date(x.published_at).toLocaleString()),
      el("td", { class: "num" }, x.surfaces),
      el("td", { class: "num" }, x.fit.median_elasticity !== undefined && x.fit.median_elasticity !== null ? num(x.fit.median_elasticity, 3) : "–"),
      el("td", { class: "num" }, `${x.fit.converged ?? "–"}/${x.fit.rows ?? "–"}`),
      el("td", {}, x.refit_id || "–", x.approved_by ? el("div", { class: "muted" }, `approved by ${x.approved_by}`) : ""),
      el("td", {}, x.live || x.status === "evicted" ? "" : el("button", { type: "button", class: "secondary", onclick: () => askRollback(x.version) }, "Roll back to this…")))));
    $("versions-empty").hidden = v.versions.length > 0;
    $("versions-empty").textContent = "No re-fit yet: run `dropprice refit` to publish the first surface version.";
  } catch (err) {
    if (handleAuthError(err)) return;
    setMsg($("rollback-msg"), err.message, "error");
  }
}

async function askRollback(version) {
  setMsg($("rollback-msg"), "");
  try {
    const r = await api("POST", "/v1/console/rollback", { to: version, confirm: false });
    state.rollbackTo = version;
    $("rollback-text").textContent = `A rollback ${r.message}. Fit: median elasticity `
      + `${num(r.restores.fit.median_elasticity, 3)}, ${r.restores.fit.converged ?? "?"}/${r.restores.fit.rows ?? "?"} converged.`;
    $("rollback-confirm").disabled = !state.canRollback;
    $("rollback-confirm").title = state.canRollback ? "" : "a rollback needs an admin key";
    $("rollback-box").hidden = false;
  } catch (err) {
    setMsg($("rollback-msg"), err.message, "error");
  }
}

async function confirmRollback() {
  try {
    const r = await api("POST", "/v1/console/rollback", { to: state.rollbackTo, confirm: true });
    setMsg($("rollback-msg"), `Rolled back by ${state.name}: ${r.message}`, "ok");
    loadVersions();
  } catch (err) {
    setMsg($("rollback-msg"), err.message, "error");
  }
}

// ------------------------------------------------------------------ wiring
function debounce(fn, ms) {
  let t = null;
  return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
}

function wire() {
  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    setMsg($("login-msg"), "checking…");
    signIn($("login-key").value.trim(), $("login-name").value.trim());
  });
  $("sign-out").addEventListener("click", signOut);
  window.addEventListener("hashchange", route);
  for (const th of document.querySelectorAll("#board th[data-sort]")) {
    th.addEventListener("click", () => {
      const key = th.dataset.sort;
      state.desc = state.sort === key ? !state.desc : false;
      state.sort = key;
      state.offset = 0;
      pollBoard();
    });
  }
  $("board-filter").addEventListener("input", debounce(() => {
    state.filter = $("board-filter").value.trim();
    state.offset = 0;
    pollBoard();
  }, 250));
  $("board-drop").addEventListener("change", () => { state.drop = $("board-drop").value; state.offset = 0; pollBoard(); });
  $("page-prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE_SIZE); pollBoard(); });
  $("page-next").addEventListener("click", () => { state.offset += PAGE_SIZE; pollBoard(); });
  $("preview-form").addEventListener("submit", runPreview);
  $("apply-btn").addEventListener("click", applyPreview);
  $("refit-btn").addEventListener("click", queueRefit);
  $("audit-kind").addEventListener("change", loadAudit);
  $("audit-reload").addEventListener("click", loadAudit);
  $("audit-filter").addEventListener("input", renderAudit);
  $("rollback-confirm").addEventListener("click", confirmRollback);
  $("rollback-cancel").addEventListener("click", () => { $("rollback-box").hidden = true; });
  $("heatmap").addEventListener("mousemove", (ev) => {
    const c = ev.currentTarget, g = c._geom;
    if (!g) return;
    const r = c.getBoundingClientRect();
    const px = (ev.clientX - r.left) * (c.width / r.width), py = (ev.clientY - r.top) * (c.height / r.height);
    const t = Math.floor((px - g.pad.l) / g.cw), n = g.rows - 1 - Math.floor((py - g.pad.t) / g.ch);
    if (t < 0 || t >= g.cols || n < 0 || n >= g.rows) { $("heatmap-hover").textContent = ""; return; }
    $("heatmap-hover").textContent = `${n} units left, period ${t}: ${money(g.grid[n][t])}`;
  });
  document.addEventListener("visibilitychange", () => { if (!document.hidden && state.key) route(); });
}

wire();
if (state.key) signIn(state.key, state.name); else showLogin();
