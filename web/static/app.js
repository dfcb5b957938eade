// kvsim web UI: plain JS, no dependencies. Every number comes from the API
// (the same library calls as the CLI); this file only formats and draws.
"use strict";

const $ = (id) => document.getElementById(id);
const SVGNS = "http://www.w3.org/2000/svg";

const FIELDS = ["model", "gpu", "gpus", "tp", "pp", "kv_dtype", "weight_dtype", "weight_overhead", "memory_gb",
  "kv_budget_gb", "arrival_rate", "turns", "turns_dist", "interval_s", "prompt_tokens", "response_tokens",
  "system_prompt_tokens", "system_prompts", "cache_outputs", "target_hit_rate"];
// Empty (or "auto") means "not given": the server then uses its default / derives the value.
const OPTIONAL = new Set(["tp", "memory_gb", "kv_budget_gb", "target_hit_rate"]);
// A typed architecture (model from "a custom architecture"): the request's `architecture` object.
const ARCH = ["name", "layers", "kv_heads", "head_dim", "params_b", "attention_heads", "hidden_size", "vocab_size",
  "max_context"];

// ------------------------------------------------------------ formatting
function groupDigits(s) {
  const [i, f] = String(s).split(".");
  const g = i.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return f === undefined ? g : g + "." + f;
}
const FMT = {
  pct: (v) => (100 * v).toFixed(2) + "%",
  int: (v) => groupDigits(Math.round(v)),
  gib: (v) => groupDigits(v.toFixed(2)),
  dec1: (v) => groupDigits(v.toFixed(1)),
};
const OUTPUTS = {
  hit_rate: "pct", lru_hit_rate: "pct", coverage: "pct", max_hit_rate: "pct",
  kv_bytes_per_token: "int", kv_bytes_per_token_per_gpu: "int", kv_budget_gib_per_gpu: "gib",
  kv_budget_gib_total: "gib", weights_gib_per_gpu: "gib", cacheable_tokens: "int", max_concurrency: "int",
  active_conversations: "dec1", tokens_per_conversation: "int", tokens_needed: "int", reuse_share: "pct",
  system_share: "pct", cache_utilization_share: "pct", request_rate_req_s: "dec1", prompt_tokens_s: "int",
  hit_tokens_s: "int",
};

// ------------------------------------------------------------ SVG charts
function el(tag, attrs, text) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
function box(svg) {
  const vb = svg.viewBox.baseVal;
  return { W: vb.width, H: vb.height, l: 64, r: 20, t: 26, b: 46 };
}
function ticks(lo, hi, n) {
  if (!(hi > lo)) return [lo];
  const step0 = (hi - lo) / n;
  const mag = Math.pow(10, Math.floor(Math.log10(step0)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= step0) || step0;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * step; v += step) out.push(+v.toPrecision(12));
  return out;
}
function logTicks(lo, hi) {
  const out = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of [1, 2, 5]) { const v = m * Math.pow(10, e); if (v >= lo * 0.999 && v <= hi * 1.001) out.push(v); }
  }
  return out;
}
function shortNum(v) {
  const a = Math.abs(v);
  if (a >= 1e9) return +(v / 1e9).toPrecision(3) + "G";
  if (a >= 1e6) return +(v / 1e6).toPrecision(3) + "M";
  if (a >= 1e4) return +(v / 1e3).toPrecision(3) + "k";
  return String(+v.toPrecision(4));
}
function legend(svg, items, x) {
  let cx = x;
  for (const it of items) {
    svg.appendChild(el("rect", { x: cx, y: 6, width: 10, height: 10, fill: it.color }));
    const t = el("text", { x: cx + 14, y: 15 }, it.name);
    svg.appendChild(t);
    cx += 24 + 7 * it.name.length;
  }
}
function axes(svg, b, xTicks, xPos, xFmt, yTicks, yPos, yFmt, xlabel, ylabel) {
  for (const v of yTicks) {
    const y = yPos(v);
    svg.appendChild(el("line", { x1: b.l, x2: b.W - b.r, y1: y, y2: y, stroke: "#e5e8ec" }));
    svg.appendChild(el("text", { x: b.l - 6, y: y + 4, "text-anchor": "end" }, yFmt(v)));
  }
  for (const v of xTicks) {
    const x = xPos(v);
    svg.appendChild(el("line", { x1: x, x2: x, y1: b.H - b.b, y2: b.H - b.b + 4, stroke: "#888" }));
    svg.appendChild(el("text", { x: x, y: b.H - b.b + 16, "text-anchor": "middle" }, xFmt(v)));
  }
  svg.appendChild(el("line", { x1: b.l, x2: b.W - b.r, y1: b.H - b.b, y2: b.H - b.b, stroke: "#888" }));
  svg.appendChild(el("line", { x1: b.l, x2: b.l, y1: b.t, y2: b.H - b.b, stroke: "#888" }));
  svg.appendChild(el("text", { x: (b.l + b.W - b.r) / 2, y: b.H - 8, "text-anchor": "middle" }, xlabel));
  svg.appendChild(el("text", { x: 14, y: (b.t + b.H - b.b) / 2, transform: `rotate(-90 14 ${(b.t + b.H - b.b) / 2})`,
    "text-anchor": "middle" }, ylabel));
}

// series: [{name, color, pts: [[x, y], ...]}]; x numeric (log when the range is wide) or categorical.
function lineChart(svg, opt) {
  clear(svg);
  const b = box(svg);
  const pts = opt.series.flatMap((s) => s.pts);
  if (!pts.length) {
    svg.appendChild(el("text", { x: b.W / 2, y: b.H / 2, "text-anchor": "middle" }, opt.empty || "no data"));
    return;
  }
  const cats = opt.categories;
  let xPos, xTicks, xFmt = opt.xfmt || shortNum;
  const x0 = b.l + 10, x1 = b.W - b.r - 10;
  if (cats) {
    xPos = (v) => x0 + (cats.length === 1 ? 0.5 : cats.indexOf(v) / (cats.length - 1)) * (x1 - x0);
    xTicks = cats; xFmt = String;
  } else {
    let lo = Math.min(...pts.map((p) => p[0])), hi = Math.max(...pts.map((p) => p[0]));
    if (opt.marker) { lo = Math.min(lo, opt.marker[0]); hi = Math.max(hi, opt.marker[0]); }
    const log = lo > 0 && hi / lo > 20;
    if (hi === lo) { hi = lo + 1; lo = lo - 1; }
    const f = log ? Math.log10 : (v) => v;
    xPos = (v) => x0 + (f(v) - f(lo)) / (f(hi) - f(lo)) * (x1 - x0);
    xTicks = log ? logTicks(lo, hi) : ticks(lo, hi, 8);
  }
  let ylo = opt.ymin !== undefined ? opt.ymin : Math.min(...pts.map((p) => p[1]));
  let yhi = opt.ymax !== undefined ? opt.ymax : Math.max(...pts.map((p) => p[1]));
  if (yhi === ylo) { yhi = ylo + 1; ylo = Math.max(0, ylo - 1); }
  const yPos = (v) => b.H - b.b - (v - ylo) / (yhi - ylo) * (b.H - b.b - b.t);
  axes(svg, b, xTicks, xPos, xFmt, ticks(ylo, yhi, 5), yPos, opt.yfmt || shortNum, opt.xlabel || "", opt.ylabel || "");
  for (const s of opt.series) {
    const sorted = cats ? s.pts : [...s.pts].sort((a, c) => a[0] - c[0]);
    const d = sorted.map((p, i) => (i ? "L" : "M") + xPos(p[0]).toFixed(1) + "," + yPos(p[1]).toFixed(1)).join(" ");
    svg.appendChild(el("path", { d, fill: "none", stroke: s.color, "stroke-width": 2, class: "series",
      "data-name": s.name }));
    for (const p of sorted) {
      svg.appendChild(el("circle", { cx: xPos(p[0]), cy: yPos(p[1]), r: 2.5, fill: s.color }));
    }
  }
  if (opt.marker) {
    const [mx, my] = opt.marker;
    svg.appendChild(el("line", { x1: xPos(mx), x2: xPos(mx), y1: b.t, y2: b.H - b.b, stroke: "#999",
      "stroke-dasharray": "4 3" }));
    svg.appendChild(el("circle", { cx: xPos(mx), cy: yPos(my), r: 5, fill: "crimson", class: "marker" }));
  }
  legend(svg, opt.series.map((s) => ({ name: s.name, color: s.color })), b.l + 8);
}

// stacks: [{name, color, values[]}] drawn stacked per category; grouped=true draws them side by side.
function barChart(svg, opt) {
  clear(svg);
  const b = box(svg);
  const cats = opt.categories, n = cats.length;
  const totals = cats.map((_, i) => opt.grouped ? Math.max(...opt.stacks.map((s) => s.values[i] || 0))
    : opt.stacks.reduce((a, s) => a + (s.values[i] || 0), 0));
  const yhi = opt.ymax !== undefined ? opt.ymax : Math.max(1e-9, ...totals) * 1.15;
  const yPos = (v) => b.H - b.b - v / yhi * (b.H - b.b - b.t);
  const slot = (b.W - b.l - b.r) / Math.max(1, n);
  axes(svg, b, [], () => 0, String, ticks(0, yhi, 5), yPos, opt.yfmt || shortNum, "", opt.ylabel || "");
  cats.forEach((c, i) => {
    const cx = b.l + slot * (i + 0.5);
    const bw = Math.min(60, slot * 0.6);
    let base = 0;
    opt.stacks.forEach((s, k) => {
      const v = s.values[i] || 0;
      const w = opt.grouped ? bw / opt.stacks.length : bw;
      const x = opt.grouped ? cx - bw / 2 + k * w : cx - bw / 2;
      const y0 = opt.grouped ? 0 : base;
      svg.appendChild(el("rect", { x, y: yPos(y0 + v), width: Math.max(0, w - 1), height: Math.max(0, yPos(y0) - yPos(y0 + v)),
        fill: s.color, class: "bar", "data-cat": c, "data-series": s.name, "data-value": v }));
      base += v;
    });
    svg.appendChild(el("text", { x: cx, y: yPos(totals[i]) - 4, "text-anchor": "middle", class: "bar-total" },
      opt.totalFmt ? opt.totalFmt(totals[i]) : ""));
    svg.appendChild(el("text", { x: cx, y: b.H - b.b + 16, "text-anchor": "middle" }, c));
  });
  legend(svg, opt.stacks.map((s) => ({ name: s.name, color: s.color })), b.l + 8);
}

// ------------------------------------------------------------ calculator
let presets = null;
let seq = 0, pending = 0;
let lastResult = null;

function setState(s) { document.body.dataset.state = s; document.body.dataset.pending = String(pending); }

function collect() {
  const body = {};
  for (const f of FIELDS) {
    const e = $("f-" + f);
    if (e.type === "checkbox") { body[f] = e.checked; continue; }
    const v = e.value.trim();
    if (OPTIONAL.has(f) && (v === "" || v.toLowerCase() === "auto")) continue;
    body[f] = v;  // as typed: the server validates and names the field
  }
  body.vary = $("f-vary").value;
  delete body.model;
  return { ...body, ...modelBody() };
}

function customArch() { return $("f-model_source").value === "custom"; }

// {model} (a preset name or the pasted config.json) or {architecture} (typed fields, empty ones left out).
function modelBody() {
  if (!customArch()) return { model: modelValue() };
  const a = {};
  for (const k of ARCH) {
    const v = $("f-architecture-" + k).value.trim();
    if (v !== "") a[k] = v;
  }
  return { architecture: a };
}

function showModelSource() {
  const custom = customArch();
  $("model-custom").classList.toggle("hidden", !custom);
  $("model-preset").classList.toggle("hidden", custom);
}

function fillArchFromPreset() {
  const a = (presets.architectures || {})[$("f-model").value.trim().toLowerCase()];
  if (!a) { $("e-architecture-name").textContent = "no dense preset of that name to copy"; return; }
  for (const k of ARCH) $("f-architecture-" + k).value = a[k] === null || a[k] === undefined ? "" : String(a[k]);
  schedule(recalc, 10);
}

// The model: a preset name, or the pasted/uploaded config.json sent as a JSON object (the server
// never opens a file named here). Throws with a message for the model field.
function modelValue() {
  const text = $("f-model_config").value.trim();
  if (!text) return $("f-model").value.trim();
  const cap = presets && presets.limits ? presets.limits.config_bytes : 262144;
  if (text.length > cap) throw new Error(`config.json larger than ${Math.round(cap / 1024)} KiB`);
  let v;
  try { v = JSON.parse(text); } catch (e) { throw new Error("config.json is not valid JSON: " + e.message); }
  if (!v || typeof v !== "object" || Array.isArray(v)) throw new Error("config.json must be a JSON object");
  return v;
}

function showModelError(msg) {
  $("e-model_config").textContent = msg;
  $("f-model_config").classList.add("bad");
}

function clearErrors(prefix) {
  document.querySelectorAll(`.err[id^="${prefix}"]`).forEach((e) => { e.textContent = ""; });
  document.querySelectorAll("input.bad, textarea.bad").forEach((e) => {
    if (e.id.startsWith(prefix === "e-" ? "f-" : "r-")) e.classList.remove("bad");
  });
}

function showErrors(detail, errPrefix, fieldPrefix, fallback) {
  const rest = [];
  for (const d of detail || []) {
    // nested fields ("architecture", "layers") and library names ("architecture.layers") -> "architecture-layers"
    const field = (d.loc || []).filter((p) => p !== "body" && p !== "query").join(".").replace(/\./g, "-");
    const span = $(errPrefix + field);
    if (span) {
      span.textContent = (span.textContent ? span.textContent + "; " : "") + d.msg;
      const inp = $(fieldPrefix + field);
      if (inp) inp.classList.add("bad");
    } else {
      rest.push((field ? field + ": " : "") + d.msg);
    }
  }
  fallback.textContent = rest.join("\n");
}

async function postJSON(url, body) {
  const res = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body) });
  let data = null;
  try { data = await res.json(); } catch (e) { data = { detail: [{ loc: [], msg: `HTTP ${res.status}` }] }; }
  return { status: res.status, data };
}

async function recalc() {
  const my = ++seq;
  let body;
  $("f-model_config").classList.remove("bad");
  $("e-model_config").textContent = "";
  try { body = collect(); } catch (e) {
    clearErrors("e-"); showModelError(e.message); $("results-card").classList.add("stale"); setState("error");
    return;
  }
  pending++; setState("pending");
  let r;
  try {
    r = await postJSON("/api/hit-rate", body);
  } catch (e) {
    pending--; if (my === seq) { $("form-error").textContent = "server unreachable: " + e; setState("error"); }
    return;
  }
  pending--;
  if (my !== seq) { setState(document.body.dataset.state); return; }  // a newer request is on its way
  clearErrors("e-");
  $("form-error").textContent = "";
  if (r.status !== 200) {
    const pasted = !!$("f-model_config").value.trim();  // then "model" errors are about the pasted config
    const detail = (r.data.detail || []).map((d) => (pasted && (d.loc || [])[1] === "model"
      ? { ...d, loc: ["body", "model_config"] } : d));
    showErrors(detail, "e-", "f-", $("form-error"));
    markStale(true);
    setState("error");
    return;
  }
  markStale(false);
  render(r.data);
  setState("ok");
  recalcReuse();
}

// Figures of the last valid input stay visible but greyed while the form holds an error.
function markStale(on) {
  for (const e of document.querySelectorAll(".out")) e.classList.toggle("stale", on);
}

function render(d) {
  lastResult = d;
  for (const [k, f] of Object.entries(OUTPUTS)) {
    const e = $("o-" + k);
    e.textContent = FMT[f](d[k]);
    e.dataset.value = String(d[k]);
  }
  $("o-layout").textContent = `- ${d.model} on ${d.gpus} x ${d.gpu}: tp ${d.tp}${d.tp_auto ? " (auto)" : ""} x pp ${d.pp},`
    + ` ${d.replicas} replica${d.replicas === 1 ? "" : "s"}, KV ${d.kv_dtype}`;
  $("o-layout").dataset.tp = d.tp;
  $("o-warnings").textContent = (d.warnings || []).join("\n");
  renderSensitivity(d);
  renderTarget(d);
}

function renderSensitivity(d) {
  const s = d.sensitivity;
  const svg = $("sens-chart");
  if (!s) { clear(svg); return; }
  const p = s.param;
  lineChart(svg, {
    series: [
      { name: "hit rate (Little's law)", color: "#1f6feb", pts: s.rows.map((r) => [r[p], r.hit_rate]) },
      { name: "under LRU", color: "#f28e2b", pts: s.rows.map((r) => [r[p], r.lru_hit_rate]) },
    ],
    marker: [s.current, s.current_hit_rate], ymin: 0, ymax: 1, yfmt: (v) => Math.round(v * 100) + "%",
    xlabel: p, ylabel: "hit rate",
  });
  svg.dataset.points = String(s.rows.length);
}

function renderTarget(d) {
  const box = $("suggestion");
  const t = d.target;
  if (!t) {
    box.classList.add("muted");
    box.textContent = "Enter a target to see the memory it needs and the smallest change that reaches it.";
    return;
  }
  box.classList.remove("muted");
  clear(box);
  const msg = document.createElement("div");
  msg.className = "msg";
  msg.id = "o-suggestion";
  msg.textContent = t.message;
  box.appendChild(msg);
  const m = t.memory;
  if (m.reachable) {
    const p = document.createElement("div");
    p.id = "o-memory-needed";
    p.dataset.value = String(m.kv_gib_per_gpu);
    p.textContent = `KV memory needed: ${FMT.gib(m.kv_gib_per_gpu)} GiB per GPU (${FMT.gib(m.kv_gib_total)} GiB in all),`
      + ` GPU memory ${FMT.gib(m.gpu_memory_gib_per_gpu)} GiB per GPU` + (m.kv_gib_per_gpu_lru === null ? "; LRU cannot reach it"
        : `; under LRU ${FMT.gib(m.kv_gib_per_gpu_lru)} GiB KV per GPU`);
    box.appendChild(p);
  }
  if (t.options && t.options.length) {
    const tbl = document.createElement("table");
    tbl.className = "tbl";
    tbl.innerHTML = "<thead><tr><th>lever</th><th>change</th><th>reaches</th><th>hit rate</th></tr></thead>";
    const tb = document.createElement("tbody");
    for (const o of t.options) {
      const tr = document.createElement("tr");
      if (t.suggestion && o.lever === t.suggestion.lever) tr.className = "sel";
      let change = o.change;
      if (o.gpu_presets && o.gpu_presets.length) change += " (" + o.gpu_presets.map((g) => g.gpu).join(", ") + ")";
      for (const v of [o.lever, change, o.reaches ? "yes" : "no", o.hit_rate === undefined ? "" : FMT.pct(o.hit_rate)]) {
        const td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
      }
      tb.appendChild(tr);
    }
    tbl.appendChild(tb);
    box.appendChild(tbl);
    labelCells(tbl);
  }
}

let reuseSeq = 0;
async function recalcReuse() {
  const my = ++reuseSeq;
  let model;
  try { model = modelBody(); } catch (e) { return; }  // the calculator shows the message
  const body = { ...model, gpu: $("f-gpu").value, gpus: $("r-gpus").value.trim(),
    prefix_tokens: $("r-prefix_tokens").value.trim(), kv_dtype: $("f-kv_dtype").value };
  const link = $("r-link_gb_s").value.trim();
  if (link) body.link_gb_s = link;
  let r;
  try { r = await postJSON("/api/reuse", body); } catch (e) { return; }
  if (my !== reuseSeq) return;
  clearErrors("re-");
  const out = $("reuse-out");
  if (r.status !== 200) { showErrors(r.data.detail, "re-", "r-", out); return; }
  const d = r.data;
  out.classList.remove("muted");
  out.innerHTML = "";
  const line = document.createElement("div");
  line.innerHTML = `break-even <strong id="o-breakeven">${d.breakeven_gb_s.toFixed(2)} GB/s</strong> per GPU`
    + ` (${d.breakeven_gb_s_replica.toFixed(2)} GB/s for the tp ${d.tp} group); prefix KV ${d.kv_gib_replica.toFixed(3)} GiB,`
    + ` recompute ${d.recompute_ms.toFixed(1)} ms`
    + (d.link_gb_s ? `; at ${d.link_gb_s} GB/s loading takes ${d.load_ms.toFixed(1)} ms:`
      + ` ${d.loading_pays ? "loading pays" : "recomputing is faster"}` : "");
  $("reuse-out").appendChild(line);
  $("o-breakeven").dataset.value = String(d.breakeven_gb_s);
}

let timer = null;
// An edit marks the page "scheduled" at once, so nothing (a user, a test) reads the previous answer as the
// answer to the new input during the debounce.
function schedule(fn, ms) {
  clearTimeout(timer);
  document.body.dataset.state = "scheduled";
  timer = setTimeout(fn, ms);
}

async function initCalc() {
  presets = await (await fetch("/api/presets")).json();
  const dl = $("models");
  for (const m of presets.models) { const o = document.createElement("option"); o.value = m; dl.appendChild(o); }
  for (const g of presets.gpus) {
    const o = document.createElement("option"); o.value = g.name; o.textContent = `${g.name} (${g.memory_gib} GiB)`;
    $("f-gpu").appendChild(o);
  }
  for (const id of ["f-kv_dtype", "f-weight_dtype"]) {
    for (const t of presets.dtypes) { const o = document.createElement("option"); o.value = o.textContent = t; $(id).appendChild(o); }
  }
  for (const p of presets.sensitivity_params) {
    const o = document.createElement("option"); o.value = o.textContent = p; $("f-vary").appendChild(o);
  }
  const d = presets.defaults;
  for (const f of FIELDS) {
    const e = $("f-" + f);
    if (e.type === "checkbox") e.checked = !!d[f];
    else e.value = d[f] === null || d[f] === undefined ? "" : String(d[f]);
  }
  $("f-vary").value = d.vary || "kv_budget_gb";
  const form = $("calc-form");
  form.addEventListener("input", () => schedule(recalc, 200));
  form.addEventListener("change", () => schedule(recalc, 50));
  $("f-vary").addEventListener("change", () => schedule(recalc, 10));
  $("f-target_hit_rate").addEventListener("input", () => schedule(recalc, 200));
  for (const id of ["r-gpus", "r-prefix_tokens", "r-link_gb_s"]) $(id).addEventListener("input", () => recalcReuse());
  $("f-model_source").addEventListener("change", () => {
    showModelSource();
    if (customArch() && !$("f-architecture-layers").value.trim()) fillArchFromPreset();
  });
  $("arch-from-preset").addEventListener("click", (ev) => { ev.preventDefault(); fillArchFromPreset(); });
  $("f-model_file").addEventListener("change", () => {
    const f = $("f-model_file").files[0];
    if (!f) return;
    const cap = presets.limits.config_bytes;
    if (f.size > cap) { showModelError(`${f.name}: larger than ${Math.round(cap / 1024)} KiB`); return; }
    f.text().then((t) => { $("f-model_config").value = t; schedule(recalc, 10); });
  });
  await recalc();
}

// ------------------------------------------------------------ results
const TIER_COLORS = { hbm: "#1f77b4", dram: "#ff7f0e", ssd: "#2ca02c" };
const SERIES_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
  "#bcbd22", "#17becf", "#393b79", "#637939"];

async function getJSON(url) {
  const res = await fetch(url);
  const data = await res.json();
  if (!res.ok) throw new Error((data.detail || []).map((d) => d.msg).join("; ") || `HTTP ${res.status}`);
  return data;
}

// Narrow screens show a table row as a block of "column: value" lines (CSS); the labels come from here.
function labelCells(tbl) {
  const head = tbl.tHead && tbl.tHead.rows[0] ? [...tbl.tHead.rows[0].cells].map((c) => c.textContent) : [];
  for (const tb of tbl.tBodies) {
    for (const tr of tb.rows) [...tr.cells].forEach((td, i) => { if (head[i]) td.dataset.label = head[i]; });
  }
}

function item(text, cls, onClick) {
  const li = document.createElement("li");
  li.className = cls + (onClick ? " click" : "");
  li.textContent = text;
  if (onClick) li.addEventListener("click", () => onClick(li));
  return li;
}

function when(mtime) { return mtime ? new Date(mtime * 1000).toLocaleString() : ""; }

// One block per run folder: its reports first, then its sweep table; a sweep's point reports folded.
function renderRun(r) {
  const div = document.createElement("div");
  div.className = "run";
  div.dataset.dir = r.dir;
  const head = document.createElement("div");
  head.className = "run-head";
  const name = document.createElement("strong"); name.textContent = r.dir === "." ? "(top folder)" : r.dir + "/";
  head.appendChild(name);
  for (const [t, c] of [[r.kind, "badge"], ...(r.latest ? [["latest", "badge latest"]] : [])]) {
    const b = document.createElement("span"); b.className = c; b.textContent = t; head.appendChild(b);
  }
  const t = document.createElement("span"); t.className = "muted"; t.textContent = when(r.mtime); head.appendChild(t);
  div.appendChild(head);
  const ul = document.createElement("ul");
  for (const rep of r.reports) {
    const desc = [rep.path.split("/").pop(), rep.mode, rep.workload,
      rep.requests === undefined || rep.requests === null ? null : groupDigits(rep.requests) + " requests",
      rep.policies.join(", ")].filter((v) => v !== null && v !== undefined && v !== "").join(" - ");
    const li = item(desc, "item report", (el) => showReport(rep.path, el));
    li.dataset.path = rep.path;
    ul.appendChild(li);
  }
  if (r.sweep) {
    const sw = r.sweep;
    const li = item(`sweep table: ${groupDigits(sw.points)} points` + (sw.failed ? `, ${sw.failed} failed` : "")
      + (r.has_sweep_json ? " (sweep.json)" : ""), "item sweep", (el) => showSweep(sw.path, el));
    li.dataset.path = sw.path;
    ul.appendChild(li);
  }
  div.appendChild(ul);
  if (r.point_reports) {
    const det = document.createElement("details");
    const sum = document.createElement("summary");
    sum.textContent = `${groupDigits(r.point_reports)} point report${r.point_reports === 1 ? "" : "s"}`;
    det.appendChild(sum);
    const pl = document.createElement("ul");
    for (const p of r.point_paths) pl.appendChild(item(p.split("/").pop(), "item point", (el) => showReport(p, el)));
    det.appendChild(pl);
    div.appendChild(det);
  }
  return div;
}

async function loadResults() {
  setResultsState("pending");
  const d = await getJSON("/api/results");
  $("res-dir").textContent = d.dir;
  const box = $("res-runs");
  clear(box);
  $("res-empty").textContent = !d.exists ? `No directory ${d.dir} yet: run \`python main.py\` (or a sweep) to fill it.`
    : d.runs.length ? "" : "No reports or sweeps found.";
  for (const r of d.runs) box.appendChild(renderRun(r));
  $("res-skipped").textContent = d.skipped.length ? d.skipped.map((s) => `${s.path}: ${s.reason}`).join("\n") : "none";
  const firstReport = box.querySelector("li.report");
  const firstSweep = box.querySelector("li.sweep");
  if (firstReport) await showReport(firstReport.dataset.path, firstReport);
  if (firstSweep) await showSweep(firstSweep.dataset.path, firstSweep);
  setResultsState("ok");
}
function setResultsState(s) { document.body.dataset.results = s; }

function select(node) {
  const scope = node.tagName === "LI" ? $("res-runs").querySelectorAll("li") : node.parentNode.children;
  for (const n of scope) if (n.tagName === node.tagName) n.classList.remove("sel");
  node.classList.add("sel");
}

async function showReport(path, tr) {
  if (tr) select(tr);
  const d = await getJSON("/api/results/report?path=" + encodeURIComponent(path));
  $("policy-card").classList.remove("hidden");
  const w = d.workload || {};
  $("policy-title").textContent = `${path} (${d.mode}, ${w.name || "?"}, ${groupDigits(w.requests || 0)} requests, config ${d.config_hash})`;
  const names = d.rows.map((r) => r.policy);
  const tiers = ["hbm", "dram", "ssd"].filter((t) => d.rows.some((r) => r[t + "_hit_rate"]));
  const stacks = tiers.length ? tiers.map((t) => ({ name: t.toUpperCase(), color: TIER_COLORS[t],
    values: d.rows.map((r) => r[t + "_hit_rate"] || 0) }))
    : [{ name: "hit rate", color: "#1f77b4", values: d.rows.map((r) => r.hit_rate || 0) }];
  // Scale to the data (hit rates of a few percent must stay readable), never past 100%.
  const top = Math.max(...d.rows.map((r) => r.hit_rate || 0));
  const ymax = Math.min(1, Math.max(0.02, top * 1.2));
  barChart($("policy-chart"), { categories: names, stacks, ymax, yfmt: (v) => +(v * 100).toPrecision(3) + "%",
    ylabel: "token hit rate", totalFmt: (v) => (100 * v).toFixed(1) + "%" });
  const timed = d.rows.some((r) => r.ttft_p50_ms !== null && r.ttft_p50_ms !== undefined);
  const tsvg = $("ttft-chart");
  if (timed) {
    barChart(tsvg, { categories: names, grouped: true, ylabel: "TTFT (ms)", stacks: [
      { name: "TTFT p50", color: "#4e79a7", values: d.rows.map((r) => r.ttft_p50_ms || 0) },
      { name: "TTFT p99", color: "#e15759", values: d.rows.map((r) => r.ttft_p99_ms || 0) }] });
  } else {
    clear(tsvg);
    tsvg.appendChild(el("text", { x: 450, y: 40, "text-anchor": "middle" }, "hit-rate-only run: no TTFT"));
  }
  const cols = ["policy", "hit_rate", "hbm_hit_rate", "dram_hit_rate", "ssd_hit_rate", "ttft_p50_ms", "ttft_p99_ms",
    "tpot_mean_ms", "evictions"];
  const th = $("policy-table").tHead;
  th.innerHTML = "<tr>" + cols.map((c) => `<th>${c}</th>`).join("") + "</tr>";
  const tb = $("policy-table").tBodies[0];
  clear(tb);
  for (const r of d.rows) {
    const trr = document.createElement("tr");
    for (const c of cols) {
      const td = document.createElement("td");
      const v = r[c];
      td.textContent = v === null || v === undefined ? "-" : c === "policy" ? v : c.endsWith("hit_rate") ? FMT.pct(v)
        : c === "evictions" ? groupDigits(v) : v.toFixed(1);
      trr.appendChild(td);
    }
    tb.appendChild(trr);
  }
  labelCells($("policy-table"));
}

let sweepData = null;
async function showSweep(path, tr) {
  if (tr) select(tr);
  sweepData = await getJSON("/api/results/sweep?path=" + encodeURIComponent(path));
  $("sweep-card").classList.remove("hidden");
  $("sweep-box").classList.remove("hidden");
  const meta = sweepData.meta;
  $("sweep-title").textContent = meta && meta.name ? `${meta.name} (${path})` : path;
  const fill = (id, opts, val, none) => {
    const s = $(id); clear(s);
    if (none) { const o = document.createElement("option"); o.value = ""; o.textContent = "(none)"; s.appendChild(o); }
    for (const c of opts) { const o = document.createElement("option"); o.value = o.textContent = c; s.appendChild(o); }
    s.value = val || "";
  };
  const g = sweepData.guess;
  fill("sw-x", sweepData.columns, g.x, false);
  fill("sw-y", sweepData.numeric, g.y, false);
  fill("sw-series", sweepData.columns, g.series, true);
  drawSweep();
}

function drawSweep() {
  const d = sweepData;
  const x = $("sw-x").value, y = $("sw-y").value, s = $("sw-series").value;
  const svg = $("sweep-chart");
  if (!x || !y) { lineChart(svg, { series: [], empty: "choose x and y columns" }); return; }
  const numericX = d.numeric.includes(x);
  const groups = new Map();
  for (const r of d.rows) {
    if (r[x] === null || r[y] === null) continue;
    const key = s ? String(r[s]) : y;
    if (!groups.has(key)) groups.set(key, new Map());
    const m = groups.get(key);
    const k = numericX ? r[x] : String(r[x]);
    if (!m.has(k)) m.set(k, []);
    m.get(k).push(r[y]);  // repeats (seeds) of one point are averaged
  }
  const cats = numericX ? undefined : [...new Set(d.rows.map((r) => String(r[x])))];
  const series = [...groups.entries()].map(([name, m], i) => ({
    name, color: SERIES_COLORS[i % SERIES_COLORS.length],
    pts: [...m.entries()].map(([k, v]) => [k, v.reduce((a, b) => a + b, 0) / v.length]) }));
  const isRate = /hit_rate|slo/.test(y);
  const top = Math.max(0, ...series.flatMap((sr) => sr.pts.map((p) => p[1])));
  lineChart(svg, { series, categories: cats, xlabel: x, ylabel: y, ymin: isRate ? 0 : undefined,
    ymax: isRate ? Math.min(1, Math.max(0.02, top * 1.15)) : undefined,
    yfmt: isRate ? (v) => +(v * 100).toPrecision(3) + "%" : shortNum,
    empty: "no rows with both columns" });
  svg.dataset.series = String(series.length);
}

// ------------------------------------------------------------ tabs
function showTab(name) {
  for (const t of ["calc", "results"]) {
    $("page-" + t).classList.toggle("hidden", t !== name);
    $("tab-" + t).classList.toggle("active", t === name);
  }
  if (name === "results") loadResults().catch((e) => { $("res-empty").textContent = String(e); setResultsState("error"); });
}

document.addEventListener("DOMContentLoaded", () => {
  for (const b of document.querySelectorAll("nav button")) b.addEventListener("click", () => showTab(b.dataset.tab));
  for (const id of ["sw-x", "sw-y", "sw-series"]) $(id).addEventListener("change", drawSweep);
  initCalc().catch((e) => { $("form-error").textContent = "cannot reach the server: " + e; setState("error"); });
  if (location.hash === "#results") showTab("results");
});
