// The report panel: the totals and the per-layer table of `cnndsl report` (schema cnndsl.report/1).
// An edit usually changes a few rows: the table is updated cell by cell, not rebuilt, so that the
// browser restyles and repaints what changed (ResNet-50's 170 rows redrawn on every keystroke cost
// tens of milliseconds of layout on a slow machine).
import { el, num, short, bytes, shape } from "./dom.js";

const HEAD = ["#", "name", "op", "volume", "params", "MACs", "memory", "RF"];
const NUMERIC = [true, false, false, false, true, true, true, true];

function rf(v) {
  return v == null ? "" : Array.isArray(v) ? v.join("x") : String(v);
}

export function renderTotals(box, rep) {
  const t = rep.totals;
  const cells = [
    ["params", num(t.params), t.trainable_params !== t.params ? `${num(t.trainable_params)} trainable` : ""],
    ["MACs", num(t.macs), short(t.macs)],
    ["FLOPs", num(t.flops), short(t.flops)],
    ["activations", bytes(t.act_bytes), `${short(t.act_elems)} values / image`],
    ["training memory", bytes(t.train_bytes), `batch ${rep.batch}, ${rep.optimizer}, ${rep.dtype}`],
    ["output", shape(rep.output_shape), `input ${shape(rep.input)}`],
  ];
  if (box.children.length !== cells.length) {
    box.replaceChildren(...cells.map(([k]) => el("div", { class: "total", "data-total": k },
      el("div", { class: "total-k" }, k), el("div", { class: "total-v" }), el("div", { class: "total-sub" }))));
  }
  cells.forEach(([, v, sub], i) => {
    const [, value, below] = box.children[i].children;
    if (value.textContent !== v) value.textContent = v;
    if (below.textContent !== sub) below.textContent = sub;
  });
}

function rows(rep) {
  const out = [{ cls: "input-row", cells: ["", "input", "INPUT", shape(rep.input), "0", "", "", "1"] }];
  rep.layers.forEach((l, i) => out.push({
    cls: l.warnings.length ? "warn" : "", title: l.warnings.join("\n"), line: l.line, col: l.col,
    cells: [String(i + 1), l.name, `${l.op} ${l.desc}`.trim(), shape(l.out), num(l.params), short(l.macs),
      l.inplace ? "in place" : bytes(l.act_bytes), rf(l.rf)],
  }));
  const t = rep.totals;
  out.push({ cls: "total-row", cells: ["", "total", `${num(rep.layer_count)} layers`, "", num(t.params), short(t.macs),
    bytes(t.act_bytes), ""] });
  return out;
}

export function renderTable(box, rep, onPick) {
  let tbody = box.querySelector("tbody");
  if (!tbody) {
    tbody = el("tbody", { onclick: (e) => { const tr = e.target.closest("tr"); if (tr?.dataset.line) onPick(+tr.dataset.line, +tr.dataset.col); } });
    box.replaceChildren(el("table", { class: "report" }, el("thead", {}, el("tr", {}, HEAD.map((h) => el("th", {}, h)))), tbody),
      el("p", { class: "muted more" }));
  }
  const want = rows(rep);
  const have = tbody.rows;
  want.forEach((r, i) => {
    let tr = have[i];
    if (!tr) {
      tr = el("tr", {}, r.cells.map((_, j) => el("td", { class: NUMERIC[j] ? "n" : null })));
      tbody.append(tr);
    }
    if (tr.className !== r.cls) tr.className = r.cls;
    if ((tr.title || "") !== (r.title || "")) tr.title = r.title || "";
    if (r.line) { tr.dataset.line = r.line; tr.dataset.col = r.col; } else delete tr.dataset.line;
    r.cells.forEach((c, j) => { if (tr.cells[j].textContent !== c) tr.cells[j].textContent = c; });
  });
  while (have.length > want.length) have[have.length - 1].remove();
  const total = have[have.length - 1].cells[4];
  if (total.id !== "total-params") {
    tbody.querySelector("#total-params")?.removeAttribute("id");   // a row that was the totals before
    total.id = "total-params";
  }
  const more = box.querySelector(".more");
  more.textContent = rep.layer_count > rep.layers.length
    ? `the first ${num(rep.layers.length)} of ${num(rep.layer_count)} layers (the JSON download has them all)` : "";
}
