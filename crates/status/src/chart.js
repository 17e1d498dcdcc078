// What both status pages share: building elements, durations, the
// per-second bar chart, and polling status.json once a second.
"use strict";
const $ = (id) => document.getElementById(id);
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) node.append(typeof child === "string" ? document.createTextNode(child) : child);
  return node;
}
function ago(seconds) {
  if (seconds == null) return "never";
  return seconds < 1 ? `${Math.round(seconds * 1000)} ms ago` : `${seconds.toFixed(1)} s ago`;
}
function duration(seconds) {
  const s = Math.floor(seconds), h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60;
  return h ? `${h} h ${m} min` : m ? `${m} min ${s % 60} s` : `${s} s`;
}
// Bars of `values` (oldest first, one per second) in the <svg> `svg`.
function chart(svg, values) {
  const max = Math.max(1, ...values), w = 600 / values.length, ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  values.forEach((value, i) => {
    const h = (value / max) * 110, bar = document.createElementNS(ns, "rect");
    bar.setAttribute("x", i * w + 1); bar.setAttribute("width", Math.max(1, w - 2));
    bar.setAttribute("y", 120 - h); bar.setAttribute("height", h); bar.setAttribute("fill", "var(--bar)");
    const title = document.createElementNS(ns, "title");
    title.textContent = `${value} messages, ${values.length - i} s ago`;
    bar.append(title); svg.append(bar);
  });
}
// Calls `show(status)` with status.json every second; says when the node
// does not answer.
function poll(show) {
  async function refresh() {
    try {
      const response = await fetch("status.json", { cache: "no-store" });
      if (!response.ok) throw new Error(response.statusText);
      const status = await response.json();
      $("conn").textContent = "live"; $("conn").className = "";
      $("uptime").textContent = duration(status.uptime_seconds);
      show(status);
    } catch (err) {
      $("conn").textContent = `not answering (${err.message})`; $("conn").className = "down";
    }
  }
  refresh();
  setInterval(refresh, 1000);
}
