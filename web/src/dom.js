// Small DOM helpers: every text the server sends goes in as textContent, never as HTML.
export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k in e && typeof v !== "string") e[k] = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c != null && c !== false) e.append(c instanceof Node ? c : String(c));
  return e;
}

export const $ = (sel, root = document) => root.querySelector(sel);

export function num(n) {
  return n == null ? "" : Number(n).toLocaleString("en-US");
}

// 12,345,678 -> 12.35M (as the report's table shortens values and MACs)
export function short(n) {
  if (n == null) return "";
  for (const [u, s] of [["T", 1e12], ["G", 1e9], ["M", 1e6], ["K", 1e3]]) if (Math.abs(n) >= s) return (n / s).toFixed(2) + u;
  return String(n);
}

export function bytes(n) {
  if (n == null) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(n)) + " " + units[i];
}

export function shape(s) {
  return Array.isArray(s) ? s.join("x") : "";
}

export function seconds(s) {
  if (s == null || !isFinite(s)) return "-";
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${Math.round(s % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}
