// The stats page: polls /api/stats every second and draws the last minute of each figure.
"use strict";

const $ = (id) => document.getElementById(id);
const history = { listeners: [], messages: [], deliveries: [], latency: [] };
const format = new Intl.NumberFormat();

function draw(name) {
  const canvas = $(`${name}-chart`);
  const values = history[name];
  const ratio = window.devicePixelRatio || 1;
  canvas.width = canvas.clientWidth * ratio;
  canvas.height = canvas.clientHeight * ratio;
  const ctx = canvas.getContext("2d");
  const top = Math.max(1, ...values);
  const step = canvas.width / 59;
  ctx.strokeStyle = "#1f57c3";
  ctx.lineWidth = 2 * ratio;
  ctx.beginPath();
  values.forEach((v, i) => {
    const x = i * step;
    const y = canvas.height - (v / top) * (canvas.height - 4 * ratio) - 2 * ratio;
    if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  });
  ctx.stroke();
}

function push(name, value) {
  history[name].push(value ?? 0);
  if (history[name].length > 60) history[name].shift();
  draw(name);
}

async function tick() {
  try {
    const answer = await fetch("/api/stats", { cache: "no-store" });
    const s = await answer.json();
    $("broker").dataset.state = s.healthy ? "connected" : "offline";
    const broker = s.broker === "redis" ? t("Redis broker") : t("in-process broker");
    const degraded = t("degraded");
    $("broker").textContent = s.healthy ? broker : `${broker} — ${degraded}`;
    $("listeners").textContent = format.format(s.listeners);
    $("messages").textContent = format.format(s.messages_per_second);
    $("deliveries").textContent = format.format(s.deliveries_per_second);
    const p50 = s.latency_ms.p50, p99 = s.latency_ms.p99;
    $("latency").textContent = p50 === null ? "–" : p50.toFixed(1);
    $("latency-unit").textContent = t("ms, median (p99 {p99} ms)", { p99: p99 === null ? "–" : p99.toFixed(1) });
    push("listeners", s.listeners);
    push("messages", s.messages_per_second);
    push("deliveries", s.deliveries_per_second);
    push("latency", p50);
  } catch {
    $("broker").dataset.state = "offline";
    $("broker").textContent = t("server unreachable");
  }
}

tick();
setInterval(tick, 1000);
