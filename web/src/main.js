// The page of `cnndsl serve`: the file list, the editor, and the panels fed by the analyzer
// (report, diagram, search) and by the trainer (training). Every request carries the token (api.js).
import { get, post, put, download, ApiError } from "./api.js";
import { makeEditor, setText, showDiagnostics, goTo } from "./editor.js";
import { el, $ } from "./dom.js";
import { renderTotals, renderTable } from "./report.js";
import { Family } from "./family.js";
import { searchForm, renderSearch } from "./search.js";
import { Training } from "./training.js";

const DEBOUNCE_MS = 15;       // edits closer than this are analysed together
const DIAGRAM_MS = 250;       // the diagram (a graphviz run) waits for a pause in typing
const POLL_MS = 1500;         // how often the open file's hash on disk is compared

const state = { path: null, saved: "", sha256: null, result: null, renders: 0, diskNotice: null };
const analysis = { timer: null, inflight: false, again: false, sent: 0 };

// ---- the editor and its analysis ----------------------------------------------------------------------
const view = makeEditor($("#editor"), { onChange: () => { markModified(); schedule(); }, onSave: save });
const family = new Family($("#controls"), () => schedule(0));

function schedule(delay = DEBOUNCE_MS) {
  clearTimeout(analysis.timer);
  analysis.timer = setTimeout(analyse, delay);
}

function request() {
  return { path: state.path, text: view.state.doc.toString(), bindings: family.bindings };
}

async function analyse() {
  if (!state.path) return;
  if (analysis.inflight) { analysis.again = true; return; }      // one at a time; the newest text follows
  analysis.inflight = true;
  const body = request();
  const t0 = performance.now();
  try {
    const r = await post("api/analyze", body);
    const t1 = performance.now();
    if (body.text === view.state.doc.toString()) {                                 // else a newer one follows
      render(r, t1 - t0);
      state.timing = { sent: t0, answered: t1, drawn: performance.now() };       // tools/bench_serve.py reads it
    }
  } catch (e) {
    message(e instanceof ApiError ? e.message : `the server did not answer: ${e.message}`, "error");
  } finally {
    analysis.inflight = false;
    if (analysis.again) { analysis.again = false; analyse(); }
  }
}

function render(r, roundTrip) {
  if (r.ok || !state.result) state.result = r;       // keeps the last report that analysed (shown dimmed)
  else state.result = { ...r, report: state.result.report };
  family.update(r.controls, r.family_error);
  showDiagnostics(view, r.diagnostics);
  renderDiagnostics(r);
  $("#stale").hidden = r.ok || !state.result?.report;
  if (r.ok) {
    renderTotals($("#totals"), r.report);
    renderTable($("#report"), r.report, (line, col) => goTo(view, line, col));
    $("#notes").replaceChildren(...r.notes.map((n) => el("p", { class: "muted" }, `note: ${n}`)));
    if (!$("#panel-diagram").hidden) scheduleDiagram();
  }
  document.body.dataset.ok = String(r.ok);
  $("#timing").textContent = `analysed in ${r.ms.toFixed(1)} ms (${roundTrip.toFixed(0)} ms round trip)`;
  state.renders++;
  document.body.dataset.renders = String(state.renders);
}

function renderDiagnostics(r) {
  const items = r.diagnostics.map((d) => el("li", { class: `diag-${d.severity}`, onclick: () => d.here && d.line && goTo(view, d.line, d.col) },
    el("span", { class: "where" }, d.line ? `${d.here ? "" : d.file + ":"}${d.line}:${d.col}` : d.file || ""),
    el("span", { class: "sev" }, `${d.severity} ${d.code}`), el("span", {}, d.message),
    d.arithmetic ? el("div", { class: "diag-arithmetic" }, d.arithmetic) : "",
    d.hint ? el("div", { class: "diag-hint" }, `hint: ${d.hint}`) : ""));
  if (r.ignored.length) items.push(el("li", { class: "muted" }, `not in the text any more: ${r.ignored.join(", ")}`));
  $("#diagnostics").replaceChildren(...items);
  const errors = r.diagnostics.filter((d) => d.severity === "error").length;
  $("#verdict").textContent = r.ok ? (r.diagnostics.length ? `ok, ${r.diagnostics.length} warning(s)` : "ok")
    : `${errors} error${errors === 1 ? "" : "s"}`;
  $("#verdict").className = r.ok ? "ok" : "bad";
}

// ---- the diagram -------------------------------------------------------------------------------------------
let diagramTimer = null, diagramSeq = 0;
function scheduleDiagram() {
  clearTimeout(diagramTimer);
  diagramTimer = setTimeout(drawDiagram, DIAGRAM_MS);
}

async function drawDiagram() {
  if (!state.result?.ok) return;                      // the diagram stays that of the last text that analysed
  const my = ++diagramSeq;
  try {
    const r = await post("api/diagram", { ...request(), style: $("#diagram-style").value });
    if (my !== diagramSeq) return;
    $("#diagram").replaceChildren(safeSvg(r.svg));
    $("#diagram-note").textContent = r.note || "";
  } catch (e) {
    if (my === diagramSeq) $("#diagram-note").textContent = e.message;
  }
}

// The server's SVG, parsed and stripped of anything active (the page's CSP would not run it either).
function safeSvg(text) {
  const doc = new DOMParser().parseFromString(text, "image/svg+xml");
  const root = doc.documentElement;
  if (root.nodeName !== "svg") return el("p", { class: "muted" }, "the diagram could not be read");
  root.querySelectorAll("script, foreignObject, iframe").forEach((n) => n.remove());
  for (const n of [root, ...root.querySelectorAll("*")]) {
    for (const a of [...n.attributes]) {
      if (/^on/i.test(a.name) || /href$/i.test(a.name)) n.removeAttribute(a.name);
    }
    // graphviz puts a node's tooltip (its parameters and MACs) in xlink:title, which browsers do not
    // show: a <title> child is what they show on hover
    const tip = n.getAttributeNS("http://www.w3.org/1999/xlink", "title");
    if (tip) {
      const t = doc.createElementNS("http://www.w3.org/2000/svg", "title");
      t.textContent = tip;
      n.prepend(t);
    }
  }
  const svg = document.importNode(root, true);
  svg.addEventListener("click", () => svg.classList.toggle("natural"));   // fit the panel, or its own size
  return svg;
}

// ---- files: list, open, save, changes on disk -----------------------------------------------------------
async function loadFiles() {
  const r = await get("api/files");
  $("#root").textContent = r.root;
  $("#files").replaceChildren(...r.files.map((f) => el("li", { "data-path": f.path, class: f.path === state.path ? "open" : null,
    onclick: () => open(f.path) }, f.path)));
  training.setData(r.data);
  return r.files;
}

async function open(path) {
  if (state.path && modified() && !confirm(`${state.path} has unsaved changes. Open ${path} anyway?`)) return;
  const f = await get(`api/file?path=${encodeURIComponent(path)}`);
  state.path = f.path;
  state.saved = f.text;
  state.sha256 = f.sha256;
  family.reset();
  setText(view, f.text);
  markModified();
  notice(null);
  history.replaceState(null, "", `#file=${encodeURIComponent(path)}`);
  document.querySelectorAll("#files li").forEach((li) => li.classList.toggle("open", li.dataset.path === path));
  $("#path").textContent = path;
  training.setDefaults(path);
  $("#search-result").replaceChildren();
  schedule(0);
}

function modified() {
  return view.state.doc.toString() !== state.saved;
}

function markModified() {
  const m = modified();
  $("#saved").textContent = m ? "modified" : "saved";
  $("#saved").className = m ? "bad" : "ok";
}

async function save(force = false) {
  if (!state.path) return true;
  const text = view.state.doc.toString();
  try {
    const r = await put("api/file", { path: state.path, text, base_sha256: force ? null : state.sha256 });
    state.saved = text;
    state.sha256 = r.sha256;
    markModified();
    notice(null);
    message(`saved ${state.path}`);
  } catch (e) {
    if (e.status === 409) {
      notice(`${state.path} changed on disk since it was opened.`, [["Overwrite it", () => save(true)],
        ["Load the disk's text", () => reload()]]);
    } else message(e.message, "error");
  }
  return true;
}

async function reload() {
  const f = await get(`api/file?path=${encodeURIComponent(state.path)}`);
  const at = Math.min(view.state.selection.main.head, f.text.length);
  state.saved = f.text;
  state.sha256 = f.sha256;
  setText(view, f.text);
  view.dispatch({ selection: { anchor: at } });
  markModified();
  notice(null);
}

async function poll() {
  if (!state.path || document.visibilityState !== "visible") return;
  try {
    const s = await get(`api/stat?path=${encodeURIComponent(state.path)}`);
    if (!s.exists) {
      notice(`${state.path} was deleted on disk; Save writes it again.`);
    } else if (s.sha256 && s.sha256 !== state.sha256 && s.sha256 !== state.diskNotice) {
      if (!modified()) {
        await reload();
        message(`${state.path} changed on disk: reloaded`);
      } else {
        state.diskNotice = s.sha256;
        notice(`${state.path} changed on disk, and you have unsaved edits.`, [
          ["Load the disk's text", () => reload()],
          ["Keep mine", () => { state.sha256 = s.sha256; notice(null); }]]);
      }
    }
  } catch (e) { /* the server is restarting: the next poll tells */ }
}

function notice(text, actions = []) {
  const box = $("#notice");
  box.hidden = !text;
  if (!text) { state.diskNotice = null; box.replaceChildren(); return; }
  box.replaceChildren(el("span", {}, text), ...actions.map(([label, fn]) => el("button", { onclick: fn }, label)));
}

function message(text, kind = "info") {
  const box = $("#message");
  box.textContent = text;
  box.className = kind;
  clearTimeout(box.timer);
  box.timer = setTimeout(() => { box.textContent = ""; }, 6000);
}

async function newFile() {
  let name = prompt("New file (a path under the served folder, ending in .net):", "new.net");
  if (!name) return;
  if (!name.endsWith(".net")) name += ".net";
  try {
    await put("api/file", { path: name, text: "input 32x32x3\nCONV(16, 3, p=1) - RELU - POOL - FC(10)\n", new: true });
    await loadFiles();
    await open(name);
  } catch (e) { message(e.message, "error"); }
}

// ---- panels -------------------------------------------------------------------------------------------------
function showTab(name) {
  for (const t of document.querySelectorAll(".tabs button")) t.classList.toggle("active", t.dataset.tab === name);
  for (const p of document.querySelectorAll(".panel")) p.hidden = p.id !== `panel-${name}`;
  if (name === "diagram") scheduleDiagram();
}

async function runSearch(opts) {
  $("#search-result").replaceChildren(el("p", { class: "muted" }, "searching..."));
  try {
    const r = await post("api/search", { ...request(), ...opts });
    renderSearch($("#search-result"), r, (b) => family.apply(b));
  } catch (e) {
    $("#search-result").replaceChildren(el("pre", { class: "log" }, e.data?.text || e.message));
  }
}

async function startTraining(opts) {
  try {
    await post("api/train", { ...request(), ...opts });
  } catch (e) {
    training.log(e.data?.text || e.message);
  }
}

async function fetchDownload(format) {
  try {
    const name = await download("api/download", { ...request(), format, style: $("#diagram-style").value });
    message(`downloaded ${name}`);
  } catch (e) { message(e.data?.text || e.message, "error"); }
}

const training = new Training($("#panel-train"), {
  onStart: startTraining,
  onStop: () => post("api/train/stop", {}).catch((e) => training.log(e.message)),
});

$("#search-form").replaceChildren(searchForm(runSearch));
for (const t of document.querySelectorAll(".tabs button")) t.addEventListener("click", () => showTab(t.dataset.tab));
for (const b of document.querySelectorAll("[data-download]")) b.addEventListener("click", () => fetchDownload(b.dataset.download));
$("#save").addEventListener("click", () => save());
$("#new-file").addEventListener("click", newFile);
$("#diagram-style").addEventListener("change", scheduleDiagram);
window.addEventListener("beforeunload", (e) => { if (state.path && modified()) e.preventDefault(); });

// For tests and the benchmark (tools/bench_serve.py): the editor and the analysis as it stands.
window.cnndsl = { view, state, family, open, save };

const fileInHash = () => decodeURIComponent((/#file=([^&]+)/.exec(location.hash) || [])[1] || "");
window.addEventListener("hashchange", () => { if (fileInHash() && fileInHash() !== state.path) open(fileInHash()); });

(async () => {
  const files = await loadFiles();
  training.connect();
  const wanted = fileInHash();
  const first = files.find((f) => f.path === wanted) || files[0];
  if (first) await open(first.path);
  else $("#path").textContent = "no .net files here: New makes one";
  setInterval(poll, POLL_MS);
})().catch((e) => message(e.message, "error"));
