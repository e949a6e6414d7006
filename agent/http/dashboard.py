"""The ops dashboard: one self-contained HTML page at `/` and the JSON it reads.

The page carries no data and loads nothing from elsewhere (inline CSS and JS, no fonts, no CDN).
Every 3 s it reads `/status` and `/dashboard.json` and redraws in place. The retry button posts
with the ops token the person types once; the page keeps it in sessionStorage and the server
never writes it into the page.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from agent.store.queries import order_rows, recent_events, recent_shipments, skus_at_risk

if TYPE_CHECKING:
    from agent.runtime import Runtime


async def dashboard_data(runtime: Runtime) -> dict[str, Any]:
    """What the dashboard shows beyond /status: activity, SKUs at risk, orders, shipments.
    The store is read on a reader thread: at-risk SKUs scan the catalog (about 0.2 s at
    100,000 SKUs), which must not hold the webhooks the event loop serves."""
    config = runtime.config
    buffers = {str(sku): over.buffer for sku, over in config.skus.items()
               if over.buffer is not None}

    def read(conn: sqlite3.Connection) -> dict[str, Any]:
        unmapped = [
            {"channel": e["channel"], "message": e["message"]}
            for e in recent_events(conn, levels=("warning",), limit=50)
            if e["kind"] == "unmapped_listings"
        ]
        return {
            "at_risk": skus_at_risk(conn, buffers, config.stock.buffer),
            "unmapped": unmapped[:5],
            "orders": order_rows(conn, limit=10),
            "shipments": recent_shipments(conn, limit=10),
        }

    return {"activity": runtime.activity.points(), **await runtime.store.read(read)}


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>storesync</title>
<style>
:root{--bg:#f6f7f9;--card:#fff;--ink:#1d2330;--mute:#687086;--line:#e3e6ec;
--ok:#1a7f37;--warn:#9a6700;--bad:#c62828;--accent:#3558d4}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;background:var(--bg);
color:var(--ink)}
header{display:flex;flex-wrap:wrap;gap:.5rem 1.5rem;align-items:baseline;padding:1rem 1.25rem;
background:var(--ink);color:#fff}
header h1{margin:0;font-size:1.25rem;letter-spacing:.02em}
header .meta{color:#c5cad6;font-size:.9rem}
main{padding:1rem 1.25rem;display:grid;gap:1rem;
grid-template-columns:repeat(auto-fit,minmax(340px,1fr))}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:.9rem 1rem;
min-width:0}
section.wide{grid-column:1/-1}
h2{margin:0 0 .6rem;font-size:.95rem;text-transform:uppercase;letter-spacing:.06em;
color:var(--mute)}
.channels{display:grid;gap:.75rem;grid-template-columns:repeat(auto-fit,minmax(230px,1fr))}
.ch{border:1px solid var(--line);border-radius:8px;padding:.7rem .8rem}
.ch .name{font-weight:600;font-size:1rem}.ch .kind{color:var(--mute);font-size:.85rem}
.badge{display:inline-block;padding:.05rem .5rem;border-radius:999px;font-size:.8rem;
font-weight:600;color:#fff;background:var(--mute);float:right}
.badge.ok{background:var(--ok)}.badge.degraded,.badge.paused{background:var(--warn)}
.badge.needs_reauth{background:var(--bad)}
dl{display:grid;grid-template-columns:auto 1fr;gap:.1rem .75rem;margin:.5rem 0 0;font-size:.85rem}
dt{color:var(--mute)}dd{margin:0;text-align:right;font-variant-numeric:tabular-nums}
.warn{color:var(--warn)}.bad{color:var(--bad)}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.85rem}
th,td{padding:.3rem .5rem;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
th{color:var(--mute);font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.spark{display:grid;gap:.6rem;grid-template-columns:repeat(auto-fit,minmax(200px,1fr))}
.spark div{font-size:.85rem;color:var(--mute)}.spark b{color:var(--ink);font-size:1.1rem}
svg{width:100%;height:44px;display:block}
button{font:inherit;border:0;border-radius:6px;padding:.35rem .8rem;background:var(--accent);
color:#fff;cursor:pointer}
input{font:inherit;padding:.3rem .5rem;border:1px solid var(--line);border-radius:6px;width:12rem}
.empty{color:var(--mute);font-style:italic}
#note{font-size:.85rem;color:var(--mute);margin-left:.5rem}
</style></head>
<body>
<header><h1>storesync</h1><span class="meta" id="summary">loading…</span>
<span class="meta" id="updated"></span></header>
<main>
<section class="wide"><h2>Channels</h2><div class="channels" id="channels"></div></section>
<section class="wide"><h2>Activity, last hour</h2><div class="spark" id="spark"></div></section>
<section id="alerts-box"><h2>Reorder alerts</h2><div id="alerts"></div></section>
<section><h2>SKUs at risk</h2><div class="scroll" id="risk"></div></section>
<section><h2>Recent orders</h2><div class="scroll" id="orders"></div></section>
<section><h2>Recent shipments</h2><div class="scroll" id="shipments"></div></section>
<section class="wide"><h2>Recent errors</h2><div class="scroll" id="events"></div>
<p><input id="token" type="password" placeholder="ops token" autocomplete="off">
<button id="retry">Retry dead letters</button><span id="note"></span></p></section>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const esc = (v) => String(v ?? "").replace(/[&<>"']/g,
  (c) => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;","'":"&#39;"}[c]));
function ago(stamp) {
  if (!stamp) return "never";
  const s = Math.max(0, (Date.now() - Date.parse(stamp)) / 1000);
  if (s < 90) return Math.round(s) + " s ago";
  if (s < 5400) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}
function table(rows, cols) {
  if (!rows.length) return '<p class="empty">none</p>';
  const head = cols.map((c) => "<th>" + esc(c[0]) + "</th>").join("");
  const body = rows.map((r) => "<tr>" + cols.map((c) =>
    '<td class="' + (c[2] || "") + '">' + c[1](r) + "</td>").join("") + "</tr>").join("");
  return "<table><tr>" + head + "</tr>" + body + "</table>";
}
function quota(q) {
  if (!q) return "-";
  if (q.model === "daily_quota") return q.used + " / " + q.limit + " today";
  if (q.available !== undefined) return Math.round(q.available) + " / " + q.capacity;
  return q.model;
}
function channels(st) {
  const names = Object.keys(st.channels);
  $("channels").innerHTML = names.map((n) => {
    const c = st.channels[n], box = c.outbox;
    const warn = (c.warnings || []).map((w) => '<div class="warn">' + esc(w) + "</div>").join("");
    return '<div class="ch" data-channel="' + esc(n) + '"><span class="badge ' + esc(c.state) +
      '" data-state="' + esc(c.state) + '">' + esc(c.state.replace("_", " ")) + "</span>" +
      '<div class="name">' + esc(n) + '</div><div class="kind">' + esc(c.kind) +
      (c.state_reason ? ' · <span class="bad">' + esc(c.state_reason) + "</span>" : "") +
      "</div><dl><dt>last poll</dt><dd>" + ago(c.last_poll_at) +
      "</dd><dt>last webhook</dt><dd>" + ago(c.last_webhook_at) +
      "</dd><dt>lag</dt><dd>" + (c.cursor_lag_s == null ? "-" : Math.round(c.cursor_lag_s) + " s") +
      "</dd><dt>outbox</dt><dd>" + box.depth + (box.oldest_age_s ? " (oldest " +
      Math.round(box.oldest_age_s) + " s)" : "") + '</dd><dt>dead letters</dt><dd class="' +
      (box.dead ? "bad" : "") + '">' + box.dead + "</dd><dt>quota</dt><dd>" + esc(quota(c.quota)) +
      "</dd></dl>" + warn + "</div>";
  }).join("") || '<p class="empty">no channels configured</p>';
  const bad = names.filter((n) => st.channels[n].state !== "ok").length;
  $("summary").textContent = names.length + " channels, " + (bad ? bad + " need attention" :
    "all ok") + " · inbox " + st.inbox.pending + " · store " +
    (st.store.writable ? "ok" : "NOT WRITABLE: " + st.store.error) +
    " · up " + Math.round(st.uptime_s / 60) + " min";
}
function spark(points, key, label, unit) {
  let vals = points.map((p) => p[key]).filter((v) => v !== null && v !== undefined);
  if (vals.length === 1) vals = [vals[0], vals[0]];  // one sample: a flat line, not nothing
  const last = vals.length ? vals[vals.length - 1] : null;
  if (!vals.length) return "<div>" + label + ' <b>-</b> ' + unit +
    '<p class="empty">the first sample comes 10 s after start</p></div>';
  const max = Math.max(1, ...vals), w = 300, h = 44;
  const step = vals.length > 1 ? w / (vals.length - 1) : w;
  const path = vals.map((v, i) => (i ? "L" : "M") + (i * step).toFixed(1) + "," +
    (h - 2 - (v / max) * (h - 4)).toFixed(1)).join("");
  return "<div>" + label + " <b>" + (last === null ? "-" : last) + "</b> " + unit +
    '<svg viewBox="0 0 ' + w + " " + h + '" preserveAspectRatio="none"><path d="' + path +
    '" fill="none" stroke="#3558d4" stroke-width="2"/></svg></div>';
}
function render(st, dash) {
  channels(st);
  $("spark").innerHTML = spark(dash.activity, "orders_per_min", "orders", "/min") +
    spark(dash.activity, "pushes_per_min", "pushes", "/min") +
    spark(dash.activity, "push_latency_ms", "push latency", "ms");
  $("alerts").innerHTML = table(st.alerts || [], [["SKU", (a) => esc(a.sku)],
    ["available", (a) => esc(a.available), "num"],
    ["reorder at", (a) => esc(a.reorder_point), "num"],
    ["from", (a) => esc(a.source)]]);
  $("risk").innerHTML = table(dash.at_risk, [["SKU", (r) => esc(r.sku)],
    ["available", (r) => '<span class="' + (r.oversold ? "bad" : "warn") + '">' +
      esc(r.available) + "</span>", "num"], ["buffer", (r) => esc(r.buffer), "num"]]) +
    dash.unmapped.map((u) => '<p class="warn">' + esc(u.message) + "</p>").join("");
  $("orders").innerHTML = table(dash.orders, [["channel", (o) => esc(o.channel)],
    ["order", (o) => esc(o.name || o.id)], ["status", (o) => esc(o.status)],
    ["units", (o) => esc(o.units), "num"], ["shipped", (o) => esc(o.shipped), "num"],
    ["seen", (o) => ago(o.first_seen_at)]]);
  $("shipments").innerHTML = table(dash.shipments, [["channel", (s) => esc(s.channel)],
    ["order", (s) => esc(s.order_id)], ["carrier", (s) => esc(s.carrier)],
    ["tracking", (s) => esc(s.tracking_number)], ["when", (s) => ago(s.shipped_at)]]);
  $("events").innerHTML = table(st.recent_events, [["when", (e) => ago(e.at)],
    ["channel", (e) => esc(e.channel)], ["what", (e) => esc(e.kind)],
    ["message", (e) => esc(e.message)]]);
  $("updated").textContent = "updated " + new Date().toLocaleTimeString();
}
async function refresh() {
  try {
    const [st, dash] = await Promise.all([fetch("status"), fetch("dashboard.json")]
      .map((p) => p.then((r) => r.json())));
    render(st, dash);
  } catch (err) {
    $("updated").textContent = "cannot reach the agent: " + err;
  }
}
$("token").value = sessionStorage.getItem("storesync-ops-token") || "";
$("retry").addEventListener("click", async () => {
  const token = $("token").value.trim();
  sessionStorage.setItem("storesync-ops-token", token);
  const r = await fetch("outbox/retry-dead", {method: "POST",
    headers: {"Authorization": "Bearer " + token, "Content-Type": "application/json"}, body: "{}"});
  const body = await r.json().catch(() => ({}));
  $("note").textContent = r.ok ? "retried " + body.retried : "refused: " + (body.error || r.status);
  refresh();
});
refresh();
setInterval(refresh, 3000);
</script></body></html>
"""
