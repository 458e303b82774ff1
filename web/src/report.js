// The report panel: the totals and the per-layer table of `cnndsl report` (schema cnndsl.report/1).
import { el, num, short, bytes, shape } from "./dom.js";

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
  box.replaceChildren(...cells.map(([k, v, sub]) =>
    el("div", { class: "total", "data-total": k }, el("div", { class: "total-k" }, k), el("div", { class: "total-v" }, v),
      el("div", { class: "total-sub" }, sub))));
}

export function renderTable(box, rep, onPick) {
  const head = el("tr", {}, ["#", "name", "op", "volume", "params", "MACs", "memory", "RF"].map((h) => el("th", {}, h)));
  const rows = [el("tr", { class: "input-row" }, el("td"), el("td", {}, "input"), el("td", {}, "INPUT"),
    el("td", {}, shape(rep.input)), el("td", { class: "n" }, "0"), el("td"), el("td", { class: "n" }), el("td", { class: "n" }, "1"))];
  rep.layers.forEach((l, i) => {
    const tr = el("tr", { class: l.warnings.length ? "warn" : null, title: l.warnings.join("\n") || null,
      onclick: () => l.line && onPick(l.line, l.col) },
    el("td", { class: "n" }, i + 1), el("td", { class: "name" }, l.name), el("td", {}, `${l.op} ${l.desc}`.trim()),
    el("td", {}, shape(l.out)), el("td", { class: "n" }, num(l.params)), el("td", { class: "n" }, short(l.macs)),
    el("td", { class: "n" }, l.inplace ? "in place" : bytes(l.act_bytes)), el("td", { class: "n" }, rf(l.rf)));
    rows.push(tr);
  });
  const t = rep.totals;
  rows.push(el("tr", { class: "total-row" }, el("td"), el("td", {}, "total"), el("td", {}, `${num(rep.layer_count)} layers`),
    el("td"), el("td", { class: "n", id: "total-params" }, num(t.params)), el("td", { class: "n" }, short(t.macs)),
    el("td", { class: "n" }, bytes(t.act_bytes)), el("td")));
  const table = el("table", { class: "report" }, el("thead", {}, head), el("tbody", {}, rows));
  const more = rep.layer_count > rep.layers.length
    ? el("p", { class: "muted" }, `the first ${num(rep.layers.length)} of ${num(rep.layer_count)} layers (the JSON download has them all)`) : null;
  box.replaceChildren(table, more || "");
}
