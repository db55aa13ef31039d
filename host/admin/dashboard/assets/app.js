// Sluice usage dashboard. Plain JavaScript and SVG, no dependencies, so that it
// runs from the binary on a closed network.
//
// The admin token is asked for once and kept in sessionStorage (this tab
// only); every request sends it as a bearer token, and a 401 asks again.
// Everything taken from the API is put in the page with textContent or
// setAttribute, never parsed as HTML: client ids and policy messages are
// data, not markup.
//
// A token with the admin role also manages keys and clients here, through
// the admin API's own endpoints; for the other roles those controls are
// never drawn, and the API refuses their calls anyway. A new key's secret
// is shown once, in the page only, and dropped when dismissed.
"use strict";

(() => {
  const TOKEN_KEY = "sluice.adminToken";
  const REFRESH_MS = 60_000;
  const SVGNS = "http://www.w3.org/2000/svg";
  // Tableau 10, darkened where white text or a white page needs contrast.
  const PALETTE = ["#4e79a7", "#e8762b", "#c8423f", "#4a9a95", "#3f8a3a", "#b89a1c", "#946a8a", "#d9667a", "#8c6a52", "#6b6b6b"];

  const state = { token: null, role: null, range: "7d", by: "cost", seq: 0, timer: null, colors: new Map() };
  const $ = (id) => document.getElementById(id);

  // ---- formatting for people -------------------------------------------

  const usd = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
  const intFmt = new Intl.NumberFormat("en-US");

  // compact writes 1234 as "1.2k" and 1200000 as "1.2M".
  function compact(n) {
    if (Math.abs(n) < 1000) return String(Math.round(n));
    const units = ["k", "M", "B", "T"];
    let v = n;
    let u = -1;
    while (Math.abs(v) >= 1000 && u < units.length - 1) {
      v /= 1000;
      u++;
    }
    let s = Math.abs(v) < 100 ? Math.round(v * 10) / 10 : Math.round(v);
    if (Math.abs(s) >= 1000 && u < units.length - 1) { // 999,950 rounds up to the next unit
      s = Math.round(s / 100) / 10;
      u++;
    }
    return String(s) + units[u];
  }

  const fmt = {
    // money writes billionths of a dollar to the cent: "$12.34".
    money(nanos) {
      if (nanos === 0) return "$0.00";
      if (nanos < 5e6) return "<$0.01";
      return usd.format(Math.round(nanos / 1e7) / 100);
    },
    // moneyExact writes every stored digit: "$12.345678901".
    moneyExact(nanos) {
      return "$" + intFmt.format(Math.floor(nanos / 1e9)) + "." + String(nanos % 1e9).padStart(9, "0");
    },
    moneyAxis(nanos) {
      const d = nanos / 1e9;
      if (d >= 1000) return "$" + compact(d);
      if (d >= 10 || d === 0) return "$" + Math.round(d);
      if (d >= 0.01) return "$" + d.toFixed(2);
      return "$" + parseFloat(d.toPrecision(2)); // fractions of a cent on a quiet day
    },
    tokens: compact,
    int: (n) => intFmt.format(n),
  };

  const utcDay = new Intl.DateTimeFormat("en-US", { timeZone: "UTC", month: "short", day: "numeric" });
  const utcWeekday = new Intl.DateTimeFormat("en-US", { timeZone: "UTC", weekday: "short", month: "short", day: "numeric" });
  const utcDayLong = new Intl.DateTimeFormat("en-US", { timeZone: "UTC", weekday: "short", month: "short", day: "numeric", year: "numeric" });
  const utcHour = new Intl.DateTimeFormat("en-GB", { timeZone: "UTC", hour: "2-digit", minute: "2-digit" });
  const localTime = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  const utcStamp = new Intl.DateTimeFormat("en-US", { timeZone: "UTC", month: "short", day: "numeric", year: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23" });

  const daily = (r) => r.bucket_seconds >= 86400;
  const bucketLabel = (r, t) => (daily(r) ? utcDay.format(t) : utcHour.format(t));
  function bucketTitle(r, t) {
    if (daily(r)) return utcDayLong.format(t) + " (UTC)";
    const end = new Date(t.getTime() + r.bucket_seconds * 1000);
    return utcDay.format(t) + ", " + utcHour.format(t) + "–" + utcHour.format(end) + " UTC";
  }
  // ago says how long before now (the server's clock, so that a skewed
  // browser clock does not matter) iso was.
  function ago(iso, now) {
    const s = Math.round((Date.parse(now) - Date.parse(iso)) / 1000);
    if (s < 60) return "just now";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < 86400) return Math.floor(s / 3600) + " h ago";
    return Math.floor(s / 86400) + " d ago";
  }
  const department = (name) => (name === "" ? "(no department)" : name);

  // ---- DOM helpers -------------------------------------------------------

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function svg(tag, attrs, parent) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (parent) parent.appendChild(e);
    return e;
  }
  function svgText(parent, attrs, text) {
    const t = svg("text", attrs, parent);
    t.textContent = text;
    return t;
  }
  function title(parent, text) {
    svg("title", {}, parent).textContent = text;
  }
  function swatch(color) {
    const s = svg("svg", { class: "swatch", width: "12", height: "12", viewBox: "0 0 12 12", "aria-hidden": "true" });
    svg("rect", { width: "12", height: "12", rx: "2", fill: color }, s);
    return s;
  }
  // numCell is a table cell showing value for people, with the exact number
  // in its title and data-value.
  function numCell(value, text, exact) {
    return el("td", { class: "num", "data-value": String(value), title: exact }, text);
  }

  // ---- API -----------------------------------------------------------------

  class Unauthorized extends Error {}

  async function get(name, params) {
    const q = new URLSearchParams(params || {}).toString();
    const res = await fetch("dashboard/api/" + name + (q ? "?" + q : ""), {
      headers: { Authorization: "Bearer " + state.token },
      cache: "no-store",
    });
    if (res.status === 401) throw new Unauthorized("The admin token was refused.");
    let body = null;
    try {
      body = await res.json();
    } catch (_) {
      // A proxy's HTML error page: reported by status below.
    }
    if (!res.ok) throw new Error((body && body.error && body.error.message) || "HTTP " + res.status + " from " + name + ".");
    return body;
  }

  // ---- views -------------------------------------------------------------

  function showLogin(message) {
    stopTimer();
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    $("board").hidden = true;
    $("controls").hidden = true;
    hideManage();
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    document.body.dataset.state = "login";
    $("token").focus();
  }

  function showBoard() {
    $("login").hidden = true;
    $("board").hidden = false;
    $("controls").hidden = false;
  }

  // load fetches every panel's data for the current range. Panels fail on
  // their own; a 401 from any of them asks for the token again.
  async function load() {
    const seq = ++state.seq;
    document.body.dataset.state = "loading";
    const range = { range: state.range };
    const results = await Promise.allSettled([
      get("usage", range),
      get("clients", { ...range, by: state.by }),
      get("denials", range),
      get("health"),
      deployments(),
    ]);
    if (seq !== state.seq) return; // a newer load is under way
    if (results.some((r) => r.status === "rejected" && r.reason instanceof Unauthorized)) {
      showLogin("The admin token was refused. Enter it again.");
      return;
    }
    const [usage, clients, denials, health, upstreams] = results;
    const errors = [];
    const panel = (r, render) => {
      if (r.status === "fulfilled") {
        render(r.value);
      } else {
        errors.push(r.reason.message);
      }
    };
    panel(usage, renderUsage);
    panel(clients, renderClients);
    panel(denials, renderDenials);
    panel(health, renderHealth);
    panel(upstreams, renderDeployments);
    const banner = $("board-error");
    banner.hidden = errors.length === 0;
    banner.textContent = errors.join(" ");
    $("updated").textContent = "Updated " + localTime.format(new Date());
    document.body.dataset.state = errors.length ? "error" : "ready";
    startTimer();
  }

  async function loadClients() {
    try {
      renderClients(await get("clients", { range: state.range, by: state.by }));
    } catch (e) {
      if (e instanceof Unauthorized) showLogin("The admin token was refused. Enter it again.");
      else $("clients-note").textContent = e.message;
    }
  }

  function colorOf(dept) {
    if (!state.colors.has(dept)) state.colors.set(dept, PALETTE[state.colors.size % PALETTE.length]);
    return state.colors.get(dept);
  }

  function renderUsage(u) {
    const r = u.range;
    const from = new Date(r.from);
    const last = new Date(Date.parse(r.to) - r.bucket_seconds * 1000);
    $("range-note").textContent = daily(r)
      ? utcWeekday.format(from) + " – " + utcDayLong.format(last) + ", per day (UTC)"
      : utcStamp.format(from) + " – " + utcStamp.format(new Date(r.to)) + " UTC, per hour";

    $("kpi-spend").textContent = fmt.money(u.total.cost_nanos);
    $("kpi-spend").title = fmt.moneyExact(u.total.cost_nanos);
    $("kpi-tokens").textContent = fmt.tokens(u.total.total_tokens);
    $("kpi-tokens").title = fmt.int(u.total.total_tokens) + " tokens";
    $("kpi-requests").textContent = fmt.int(u.total.requests);

    // Colours follow the order of spend, which the API sorts by, so the
    // biggest spender keeps the first colour across refreshes of a range.
    state.colors = new Map();
    const charted = u.departments.filter((d) => d.cost_nanos > 0 || d.total_tokens > 0);
    charted.forEach((d) => colorOf(d.department));
    const buckets = u.buckets.map((b) => new Date(b));
    const series = (key) => charted.map((d) => ({ name: department(d.department), color: colorOf(d.department), values: d[key] }));

    stackedBars($("spend-chart"), r, buckets, series("cost_nanos_series"), fmt.money, fmt.moneyAxis, "Spend");
    stackedBars($("tokens-chart"), r, buckets, series("total_tokens_series"), (n) => fmt.tokens(n) + " tokens", fmt.tokens, "Tokens");
    legend($("spend-legend"), charted, (d) => fmt.money(d.cost_nanos));
    legend($("tokens-legend"), charted, (d) => fmt.tokens(d.total_tokens));

    const body = $("departments").tBodies[0];
    body.replaceChildren();
    for (const d of u.departments) {
      const tr = el("tr", { "data-department": d.department });
      const name = el("th", { scope: "row" });
      if (state.colors.has(d.department)) name.appendChild(swatch(colorOf(d.department)));
      name.appendChild(el("span", d.department === "" ? { class: "none" } : {}, department(d.department)));
      tr.appendChild(name);
      tr.append(...deptCells(d));
      body.appendChild(tr);
    }
    if (u.departments.length === 0) {
      body.appendChild(el("tr")).appendChild(el("td", { colspan: "6", class: "none" }, "No requests in this range."));
    }
    const foot = $("departments").tFoot;
    foot.replaceChildren();
    const tr = el("tr", { "data-department": "*total*" });
    tr.appendChild(el("td", {}, "Total"));
    tr.append(...deptCells(u.total));
    foot.appendChild(tr);
  }

  function deptCells(d) {
    return [
      numCell(d.cost_nanos, fmt.money(d.cost_nanos), fmt.moneyExact(d.cost_nanos)),
      numCell(d.total_tokens, fmt.tokens(d.total_tokens), fmt.int(d.total_tokens) + " tokens"),
      numCell(d.prompt_tokens, fmt.tokens(d.prompt_tokens), fmt.int(d.prompt_tokens) + " prompt tokens"),
      numCell(d.completion_tokens, fmt.tokens(d.completion_tokens), fmt.int(d.completion_tokens) + " completion tokens"),
      numCell(d.requests, fmt.int(d.requests), fmt.int(d.requests) + " requests"),
    ];
  }

  function legend(ul, depts, value) {
    ul.replaceChildren();
    for (const d of depts) {
      const li = el("li");
      li.appendChild(swatch(colorOf(d.department)));
      li.appendChild(el("span", {}, department(d.department) + " · " + value(d)));
      ul.appendChild(li);
    }
  }

  // niceStep rounds a raw tick step up to 1, 2, 2.5 or 5 times a power of ten.
  function niceStep(raw) {
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const f = raw / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * p;
  }

  // stackedBars draws one bar per bucket, stacked by series, with a y axis,
  // bucket labels, and a hover title per bucket listing every series.
  function stackedBars(box, r, buckets, series, format, axisFormat, what) {
    box.replaceChildren();
    const n = buckets.length;
    const sums = buckets.map((_, i) => series.reduce((s, x) => s + x.values[i], 0));
    const max = Math.max(0, ...sums);
    if (series.length === 0 || max === 0) {
      box.appendChild(el("p", { class: "empty" }, "No usage in this range."));
      return;
    }
    const W = 600, H = 250, L = 56, R = 8, T = 10, B = 26;
    const pw = W - L - R, ph = H - T - B;
    const total = sums.reduce((a, b) => a + b, 0);
    const root = svg("svg", {
      viewBox: `0 0 ${W} ${H}`, role: "img",
      "aria-label": `${what} per department, ${series.length} departments, ${format(total)} in total`,
    });
    const step = Math.max(1, niceStep(max / 4)); // tokens and nanos are whole
    const top = Math.ceil(max / step) * step;
    const y = (v) => T + ph - (v / top) * ph;

    const axis = svg("g", { class: "axis y-axis" }, root);
    for (let v = 0; v <= top + step / 2; v += step) {
      svg("line", { class: "grid-line", x1: L, x2: W - R, y1: y(v), y2: y(v) }, axis);
      svgText(axis, { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, axisFormat(v));
    }
    const band = pw / n;
    const bw = Math.max(1, band * 0.72);
    const xAxis = svg("g", { class: "axis x-axis" }, root);
    svg("line", { x1: L, x2: W - R, y1: T + ph, y2: T + ph }, xAxis);
    const every = Math.ceil(n / 8);
    buckets.forEach((t, i) => {
      if (i % every !== 0) return; // at most eight labels fit
      svgText(xAxis, { x: L + band * i + band / 2, y: H - 8, "text-anchor": "middle" }, bucketLabel(r, t));
    });

    const base = new Array(n).fill(0);
    for (const s of series) {
      const g = svg("g", { class: "series", "data-series": s.name, fill: s.color }, root);
      s.values.forEach((v, i) => {
        if (v <= 0) return;
        const y0 = y(base[i]), y1 = y(base[i] + v);
        base[i] += v;
        svg("rect", { class: "bar", x: L + band * i + (band - bw) / 2, y: y1, width: bw, height: Math.max(0.5, y0 - y1) }, g);
      });
    }
    // Hit areas on top, one per bucket, carry the tooltip for the whole
    // column: what each department used in that bucket.
    const hits = svg("g", { class: "hits" }, root);
    buckets.forEach((t, i) => {
      const rect = svg("rect", { class: "hit", x: L + band * i, y: T, width: band, height: ph }, hits);
      const lines = [bucketTitle(r, t)];
      for (const s of series) if (s.values[i] > 0) lines.push(s.name + ": " + format(s.values[i]));
      lines.push("Total: " + format(sums[i]));
      title(rect, lines.join("\n"));
    });
    box.appendChild(root);
  }

  function renderClients(c) {
    for (const b of document.querySelectorAll(".toggle button")) {
      b.setAttribute("aria-pressed", String(b.dataset.by === c.by));
    }
    const body = $("clients").tBodies[0];
    body.replaceChildren();
    for (const x of c.clients) {
      const tr = el("tr", { "data-client": x.client });
      tr.appendChild(el("th", { scope: "row" }, x.client));
      tr.appendChild(el("td", x.department ? {} : { class: "none" }, x.department || "(deleted)"));
      tr.appendChild(numCell(x.cost_nanos, fmt.money(x.cost_nanos), fmt.moneyExact(x.cost_nanos)));
      tr.appendChild(numCell(x.total_tokens, fmt.tokens(x.total_tokens), fmt.int(x.total_tokens) + " tokens"));
      tr.appendChild(numCell(x.requests, fmt.int(x.requests), fmt.int(x.requests) + " requests"));
      body.appendChild(tr);
    }
    if (c.clients.length === 0) {
      body.appendChild(el("tr")).appendChild(el("td", { colspan: "5", class: "none" }, "No clients used the gateway in this range."));
    }
    $("clients-note").textContent = c.count > c.clients.length
      ? `Top ${c.clients.length} of ${c.count} clients by ${c.by === "cost" ? "spend" : "tokens"}.`
      : "";
  }

  function renderDenials(d) {
    $("kpi-denied").textContent = fmt.int(d.total);
    const box = $("denials-chart");
    box.replaceChildren();
    if (d.denials.length === 0) {
      box.appendChild(el("p", { class: "empty" }, "No request was denied or failed in this range."));
      return;
    }
    const W = 600, row = 36, T = 4, LW = 290, VW = 56;
    const H = T + row * d.denials.length;
    const root = svg("svg", {
      viewBox: `0 0 ${W} ${H}`, role: "img",
      "aria-label": `Denied or failed requests by reason, ${fmt.int(d.total)} in total`,
    });
    const max = Math.max(...d.denials.map((x) => x.requests));
    const bars = svg("g", { class: "denials", fill: "#c8423f" }, root);
    d.denials.forEach((x, i) => {
      const y0 = T + row * i;
      const g = svg("g", { class: "denial", "data-code": x.code }, root);
      const reason = x.reason.length > 44 ? x.reason.slice(0, 43) + "…" : x.reason;
      svgText(g, { class: "bar-label", x: 0, y: y0 + 14 }, reason);
      if (x.reason !== x.code) svgText(g, { class: "bar-code", x: 0, y: y0 + 28 }, x.code);
      const w = Math.max(2, ((W - LW - VW) * x.requests) / max);
      const bar = svg("rect", { class: "bar", x: LW, y: y0 + 6, width: w, height: row - 14, rx: 2 }, bars);
      title(bar, `${x.reason} (${x.code}): ${fmt.int(x.requests)} requests`);
      svgText(g, { class: "bar-value", x: LW + w + 6, y: y0 + 22 }, fmt.int(x.requests));
    });
    box.appendChild(root);
  }

  function badge(kind, text) {
    return el("span", { class: "badge " + kind }, text);
  }
  function kv(dl, key, value) {
    dl.appendChild(el("dt", {}, key));
    const dd = el("dd");
    if (value instanceof Node) dd.appendChild(value);
    else dd.textContent = value;
    dl.appendChild(dd);
  }
  function loaded(iso, now) {
    return el("span", { title: utcStamp.format(new Date(iso)) + " UTC" }, ago(iso, now));
  }
  function mono(text, full) {
    return el("span", { class: "mono", title: full || text }, text);
  }

  function renderHealth(h) {
    const box = $("health");
    box.replaceChildren();
    box.className = "health";
    if (!h.reported) {
      box.appendChild(el("p", { class: "none" }, "This gateway reports no plugin or policy health to the dashboard."));
      return;
    }

    box.appendChild(el("h3", {}, "Policy"));
    const p = h.policy;
    if (!p) {
      box.appendChild(el("p", { class: "none" }, "No policy set is configured."));
    } else {
      const e = p.enforced;
      const dl = el("dl", { class: "kv", id: "policy-health" });
      const status = e.last_error
        ? badge("warn", "Last reload failed; previous revision in force")
        : p.disagreements > 0 ? badge("warn", "Shadow disagrees") : badge("ok", "Healthy");
      kv(dl, "Status", status);
      kv(dl, "Revision", mono(e.revision.slice(0, 12), e.revision));
      kv(dl, "Source", e.source);
      kv(dl, "Loaded", loaded(e.loaded_at, h.checked_at));
      kv(dl, "Files, tests", `${e.files.length} files, ${e.tests} tests passed`);
      kv(dl, "Reloads", `${e.reloads_ok} ok, ${e.reloads_failed} failed`);
      if (p.shadow) {
        kv(dl, "Shadow revision", mono(p.shadow.revision.slice(0, 12), p.shadow.revision));
        kv(dl, "Disagreements", `${fmt.int(p.disagreements)} (errors ${fmt.int(p.shadow_errors)})`);
      }
      box.appendChild(dl);
      if (e.last_error) {
        const lines = e.last_error.problems.map((x) => (x.file ? x.file + (x.line ? ":" + x.line : "") + ": " : "") + x.message);
        box.appendChild(el("p", { class: "last-error" }, "Last error: " + lines.join("\n")));
      }
    }

    box.appendChild(el("h3", {}, "Plugins"));
    if (h.plugins.length === 0) {
      box.appendChild(el("p", { class: "none" }, "No plugins are loaded."));
      return;
    }
    const table = el("table", { id: "plugin-health" });
    const head = table.createTHead().insertRow();
    for (const [name, cls] of [["Plugin"], ["Status"], ["Module"], ["Loaded"], ["Reloads", "num"], ["Discarded", "num"]]) {
      head.appendChild(el("th", cls ? { scope: "col", class: cls } : { scope: "col" }, name));
    }
    const body = table.createTBody();
    for (const x of h.plugins) {
      const tr = el("tr", { "data-plugin": x.name });
      tr.appendChild(el("th", { scope: "row" }, x.name));
      const td = el("td");
      td.appendChild(x.last_error ? badge("warn", "Reload refused")
        : x.instances_discarded > 0 ? badge("warn", "Instances discarded") : badge("ok", "Healthy"));
      tr.appendChild(td);
      tr.appendChild(el("td")).appendChild(mono(x.sha256.slice(0, 12), "sha256 " + x.sha256));
      tr.appendChild(el("td")).appendChild(loaded(x.loaded_at, h.checked_at));
      tr.appendChild(el("td", { class: "num", title: `${x.reloads} ok, ${x.failed_reloads} failed` }, `${x.reloads} / ${x.failed_reloads}`));
      tr.appendChild(el("td", { class: "num", title: "instances closed after a trap, timeout or bad result" }, fmt.int(x.instances_discarded)));
      body.appendChild(tr);
      if (x.last_error) {
        const er = body.insertRow();
        er.appendChild(el("td", { colspan: "6", class: "last-error" }, "Last reload error: " + x.last_error));
      }
    }
    box.appendChild(table);
  }

  // ---- deployments ----------------------------------------------------------

  // stateBadge says where a deployment stands with its circuit breaker, and
  // why it is out when it is.
  function stateBadge(d) {
    const why = d.reason === "latency" ? "too slow" : "failing";
    if (d.state === "open") return badge("bad", "Ejected, " + why);
    if (d.state === "half_open") return badge("warn", "Probing, " + why);
    return badge("ok", "In rotation");
  }

  // quotaText is a deployment's use of its provider quota over the last
  // minute, against the quota.
  function quotaText(q) {
    if (!q) return "–";
    const parts = [];
    if (q.rpm > 0) parts.push(`${fmt.int(q.requests)} / ${fmt.int(q.rpm)} requests`);
    if (q.tpm > 0) parts.push(`${compact(q.tokens)} / ${compact(q.tpm)} tokens`);
    return parts.join(", ");
  }

  // deployments reads /admin/upstreams; null when the gateway serves none
  // (an admin API without routing).
  async function deployments() {
    try {
      return await call("GET", "upstreams");
    } catch (e) {
      if (e.status === 404) return null;
      throw e;
    }
  }

  function renderDeployments(u) {
    const body = $("deployments").tBodies[0];
    body.replaceChildren();
    const list = (u && u.data) || [];
    $("deployments-note").textContent = !u ? "This gateway reports no deployments to the dashboard."
      : list.length ? "" : "No model deployments are configured.";
    let model = null;
    for (const d of list) {
      const tr = el("tr", { "data-deployment": d.deployment, "data-state": d.state, "data-reason": d.reason || "" });
      // The model is named on its first deployment's row only.
      tr.appendChild(el("th", { scope: "row" }, d.model === model ? "" : d.model));
      model = d.model;
      tr.appendChild(el("td")).appendChild(mono(d.deployment, `${d.upstream} / ${d.upstream_model}` + (d.region ? `, region ${d.region}` : "") + `, weight ${d.weight}`));
      tr.appendChild(el("td")).appendChild(stateBadge(d));
      tr.appendChild(numCell(d.in_flight, fmt.int(d.in_flight)));
      tr.appendChild(numCell(d.latency_ms, d.latency_ms > 0 ? `${d.latency_ms.toFixed(d.latency_ms < 10 ? 1 : 0)} ms` : "–", "moving average of answered calls"));
      tr.appendChild(numCell(d.quota ? d.quota.tokens : 0, quotaText(d.quota)));
      body.appendChild(tr);
    }
  }

  // ---- keys and clients (admin role) --------------------------------------

  // call sends a request to the admin API the dashboard sits in: "keys" is
  // /admin/keys.
  async function call(method, path, body) {
    const res = await fetch(path, {
      method,
      headers: { Authorization: "Bearer " + state.token, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
    if (res.status === 401) throw new Unauthorized("The admin token was refused.");
    let out = null;
    try {
      out = await res.json();
    } catch (_) {
      // reported by status below
    }
    if (!res.ok) {
      const e = new Error((out && out.error && out.error.message) || "HTTP " + res.status + " from " + path + ".");
      e.status = res.status;
      throw e;
    }
    return out;
  }

  const enc = encodeURIComponent;
  const day = new Intl.DateTimeFormat("en-US", { dateStyle: "medium", timeZone: "UTC" });

  function manageError(message) {
    $("manage-error").hidden = !message;
    $("manage-error").textContent = message || "";
  }

  function failed(e) {
    if (e instanceof Unauthorized) showLogin("The admin token was refused. Enter it again.");
    else manageError(e.message);
  }

  function hideManage() {
    state.role = null;
    $("whoami").textContent = "";
    $("manage").hidden = true;
    $("client-form").hidden = true;
    hideSecret();
    $("keys").tBodies[0].replaceChildren();
    $("manage-clients").tBodies[0].replaceChildren();
    $("key-client").replaceChildren();
  }

  // loadAccess asks who the token is; only the admin role gets the
  // management panels. A gateway too old to answer is treated as a viewer.
  async function loadAccess() {
    let who = null;
    try {
      who = await call("GET", "whoami");
    } catch (e) {
      if (e instanceof Unauthorized) {
        showLogin("The admin token was refused. Enter it again.");
        return;
      }
    }
    hideManage();
    if (!who) return;
    state.role = who.role;
    $("whoami").textContent = who.name + " · " + who.role;
    if (who.role !== "admin") return;
    $("manage").hidden = false;
    await loadManage();
  }

  async function loadManage() {
    try {
      const [clients, keys] = await Promise.all([call("GET", "clients"), call("GET", "keys")]);
      renderManage(clients.data, keys.data);
      document.body.dataset.manage = "ready";
    } catch (e) {
      failed(e);
    }
  }

  function labelsText(labels) {
    return Object.entries(labels || {})
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => k + "=" + v)
      .join(", ");
  }

  // parseLabels reads "team=nlp, cost_center=42"; null when a part has no "=".
  function parseLabels(text) {
    const out = {};
    for (const part of text.split(",")) {
      const p = part.trim();
      if (!p) continue;
      const i = p.indexOf("=");
      if (i <= 0) return null;
      out[p.slice(0, i).trim()] = p.slice(i + 1).trim();
    }
    return out;
  }

  function button(text, action, cls) {
    const b = el("button", { type: "button", "data-action": action }, text);
    if (cls) b.className = cls;
    return b;
  }

  function renderManage(clients, keys) {
    const select = $("key-client");
    const chosen = select.value;
    select.replaceChildren(...clients.filter((c) => !c.disabled_at).map((c) => el("option", { value: c.id }, c.id)));
    if (chosen) select.value = chosen;

    const kb = $("keys").tBodies[0];
    kb.replaceChildren();
    for (const k of keys) {
      const active = !k.revoked_at;
      const tr = el("tr", { "data-key": k.id, class: active ? "" : "inactive" });
      tr.append(
        el("td", {}, k.name || "(unnamed)"),
        el("td", {}, k.client_id),
        el("td", { class: "mono" }, k.prefix + "…"),
        el("td", {}, day.format(new Date(k.created_at))),
        el("td", {}, k.expires_at ? day.format(new Date(k.expires_at)) : "never"),
        el("td", { class: "status" }, !active ? "Revoked" : k.expires_soon ? "Expires soon" : "Active"),
      );
      const actions = el("td", { class: "actions" });
      if (active) actions.append(button("Rotate", "rotate"), button("Revoke", "revoke", "danger"));
      tr.append(actions);
      kb.append(tr);
    }
    if (!keys.length) {
      const tr = el("tr");
      tr.append(el("td", { colspan: "7", class: "none" }, "No keys yet."));
      kb.append(tr);
    }

    const cb = $("manage-clients").tBodies[0];
    cb.replaceChildren();
    for (const c of clients) {
      const tr = el("tr", { "data-client": c.id, class: c.disabled_at ? "inactive" : "" });
      tr.append(
        el("td", {}, c.id),
        el("td", {}, c.department),
        el("td", {}, c.tier),
        el("td", { class: "labels" }, labelsText(c.labels)),
        el("td", { class: "status" }, c.disabled_at ? "Disabled" : "Active"),
      );
      const actions = el("td", { class: "actions" });
      actions.append(button("Edit", "edit"), c.disabled_at ? button("Enable", "enable") : button("Disable", "disable", "danger"));
      tr.append(actions);
      tr.dataset.department = c.department;
      tr.dataset.tier = c.tier;
      tr.dataset.labels = labelsText(c.labels);
      cb.append(tr);
    }
  }

  function showSecret(secret) {
    $("key-secret-value").textContent = secret;
    $("key-secret").hidden = false;
  }
  function hideSecret() {
    $("key-secret-value").textContent = "";
    $("key-secret").hidden = true;
  }

  async function changed(request) {
    try {
      await request();
      manageError("");
    } catch (e) {
      failed(e);
    }
    await loadManage();
  }

  function wireManage() {
    $("key-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const body = { client_id: $("key-client").value, name: $("key-name").value.trim() };
      const expires = $("key-expires").value.trim();
      if (expires && expires !== "never") body.expires = expires;
      changed(async () => {
        const k = await call("POST", "keys", body);
        $("key-name").value = "";
        $("key-expires").value = "";
        showSecret(k.key);
      });
    });
    $("key-secret-done").addEventListener("click", hideSecret);
    $("keys").tBodies[0].addEventListener("click", (ev) => {
      const b = ev.target.closest("button[data-action]");
      if (!b) return;
      const id = b.closest("tr").dataset.key;
      if (b.dataset.action === "rotate") {
        changed(async () => showSecret((await call("POST", "keys/" + enc(id) + "/rotate", {})).key));
      } else if (b.dataset.action === "revoke") {
        // A revoked key cannot come back: the first click only asks.
        if (b.dataset.confirm !== "yes") {
          b.dataset.confirm = "yes";
          b.textContent = "Confirm revoke";
          return;
        }
        changed(() => call("POST", "keys/" + enc(id) + "/revoke"));
      }
    });
    $("manage-clients").tBodies[0].addEventListener("click", (ev) => {
      const b = ev.target.closest("button[data-action]");
      if (!b) return;
      const tr = b.closest("tr");
      const id = tr.dataset.client;
      if (b.dataset.action === "edit") {
        const f = $("client-form");
        f.dataset.client = id;
        $("client-form-id").textContent = id;
        $("client-department").value = tr.dataset.department;
        $("client-tier").value = tr.dataset.tier;
        $("client-labels").value = tr.dataset.labels;
        f.hidden = false;
        $("client-department").focus();
      } else {
        changed(() => call("POST", "clients/" + enc(id) + "/" + b.dataset.action));
      }
    });
    $("client-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const labels = parseLabels($("client-labels").value);
      if (labels === null) {
        manageError("Labels are name=value pairs separated by commas.");
        return;
      }
      const id = $("client-form").dataset.client;
      const body = { department: $("client-department").value.trim(), tier: $("client-tier").value.trim(), labels };
      changed(async () => {
        await call("PATCH", "clients/" + enc(id), body);
        $("client-form").hidden = true;
      });
    });
    $("client-cancel").addEventListener("click", () => {
      $("client-form").hidden = true;
    });
  }

  // ---- wiring -----------------------------------------------------------

  function stopTimer() {
    clearTimeout(state.timer);
    state.timer = null;
  }
  function startTimer() {
    stopTimer();
    state.timer = setTimeout(() => {
      if (document.visibilityState === "visible") load();
      else startTimer();
    }, REFRESH_MS);
  }

  function init() {
    $("login-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const token = $("token").value.trim();
      if (!token) return;
      $("token").value = "";
      state.token = token;
      sessionStorage.setItem(TOKEN_KEY, token);
      showBoard();
      load();
      loadAccess();
    });
    $("range").addEventListener("change", () => {
      state.range = $("range").value;
      load();
    });
    $("refresh").addEventListener("click", () => load());
    $("signout").addEventListener("click", () => showLogin(""));
    for (const b of document.querySelectorAll(".toggle button")) {
      b.addEventListener("click", () => {
        state.by = b.dataset.by;
        loadClients();
      });
    }
    state.range = $("range").value;
    state.token = sessionStorage.getItem(TOKEN_KEY);
    wireManage();
    if (state.token) {
      showBoard();
      load();
      loadAccess();
    } else {
      showLogin("");
    }
  }

  init();
})();
