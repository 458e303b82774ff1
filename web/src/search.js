// The search panel: the family's Pareto front (cnndsl search, run by the server), a row per member;
// picking a row sets the controls to its bindings.
import { el, num, bytes } from "./dom.js";

const MEASURES = ["params", "macs", "memory", "depth", "rf", "flops", "layers"];

export function searchForm(onRun) {
  const a = el("select", { id: "pareto-a" }, MEASURES.map((m) => el("option", { value: m, selected: m === "params" }, m)));
  const b = el("select", { id: "pareto-b" }, MEASURES.map((m) => el("option", { value: m, selected: m === "macs" }, m)));
  const opt = el("input", { type: "checkbox", id: "search-optionals" });
  const run = el("button", { id: "search-run", onclick: () => onRun({ pareto: `${a.value},${b.value}`, optionals: opt.checked }) },
    "Search the family");
  return el("div", { class: "row" }, run, el("span", {}, " Pareto front of "), a, el("span", {}, " and "), b,
    el("label", { class: "inline" }, opt, " optionals on and off too"));
}

export function renderSearch(box, r, onPick) {
  const lines = [
    `${num(r.count)} members, ${num(r.measured)} measured${r.sampled ? " (a random sample)" : ""}, ` +
    `${num(r.kept)} kept (${num(r.distinct)} distinct nets), ${r.seconds} s`,
    ...Object.entries(r.dropped).map(([why, n]) => {
      const ex = r.drop_examples[why];
      return `dropped ${num(n)}: ${why}` + (ex ? `; e.g. ${bindingsText(ex.bindings)}: ${ex.message}` : "");
    }),
  ];
  const [a, b] = r.pareto_measures;
  const head = el("tr", {}, ["bindings", "depth", "params", "MACs", "train memory", "RF"].map((h) => el("th", {}, h)));
  const rows = r.pareto.map((m) => el("tr", { class: "pick", title: "show this member", onclick: () => onPick(m.bindings) },
    el("td", {}, bindingsText(m.bindings)), el("td", { class: "n" }, m.depth), el("td", { class: "n" }, num(m.params)),
    el("td", { class: "n" }, num(m.macs)), el("td", { class: "n" }, bytes(m.memory)), el("td", { class: "n" }, m.rf ?? "")));
  box.replaceChildren(
    ...lines.map((l) => el("p", { class: "muted" }, l)),
    el("h3", {}, `Pareto front (${a}, ${b}): ${r.pareto.length} member${r.pareto.length === 1 ? "" : "s"}`),
    el("table", { class: "report", id: "pareto" }, el("thead", {}, head), el("tbody", {}, rows)));
}

function bindingsText(b) {
  return Object.entries(b).map(([k, v]) => `${k}=${v}`).join(" ") || "(no choices)";
}
