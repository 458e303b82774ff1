// A family's free variables as controls: a slider for a range (`let N = 2 in 1..5`), a select for a
// list (`in 16, 32, 64`) and for an optional's on/off. Moving one sets a binding (as -D NAME=VALUE)
// and re-analyses at once; a control left alone keeps the spec's own value.
import { el } from "./dom.js";

export class Family {
  constructor(box, onChange) {
    this.box = box;
    this.onChange = onChange;
    this.bindings = {};
    this.controls = [];
    this.key = "";
  }

  reset() {
    this.bindings = {};
    this.controls = [];
    this.key = "";
    this.box.replaceChildren();
  }

  // Draw the controls when the set of variables changed; keep the bindings of those that remain.
  update(controls, familyError) {
    if (!controls) return;                               // the text did not parse: keep what is shown
    const key = JSON.stringify(controls.map((c) => [c.name, c.kind, c.values, c.min, c.max, c.default]));
    for (const name of Object.keys(this.bindings)) {
      if (!controls.some((c) => c.name === name)) delete this.bindings[name];
    }
    if (key === this.key && !familyError) return;
    this.key = key;
    this.controls = controls;
    const items = controls.map((c) => this.control(c));
    const note = familyError ? el("div", { class: "muted" }, `family: ${familyError}`) : null;
    this.box.replaceChildren(...items, note || "");
    this.box.hidden = !items.length && !note;
  }

  value(c) {
    return this.bindings[c.name] ?? c.default;
  }

  set(name, value) {
    const c = this.controls.find((x) => x.name === name);
    if (c && value === c.default) delete this.bindings[name];
    else this.bindings[name] = value;
    this.onChange();
  }

  // Bindings from elsewhere (a row of the search's table): set every control, analyse once.
  apply(bindings) {
    for (const [name, value] of Object.entries(bindings)) {
      const c = this.controls.find((x) => x.name === name);
      if (!c) continue;
      const v = String(value);
      if (v === c.default) delete this.bindings[name];
      else this.bindings[name] = v;
    }
    this.key = "";
    this.update(this.controls, null);
    this.onChange();
  }

  control(c) {
    const label = el("span", { class: "ctl-value" }, this.value(c));
    const changed = (v) => { label.textContent = v; this.set(c.name, v); };
    let input;
    if (c.kind === "range") {            // whole numbers min..max (a value of -D outside them still shows)
      input = el("input", { type: "range", min: String(c.min), max: String(c.max), step: "1", "data-name": c.name,
        value: String(this.value(c)), oninput: (e) => changed(e.target.value) });
    } else {
      input = el("select", { "data-name": c.name, onchange: (e) => changed(e.target.value) },
        c.values.map((v) => el("option", { value: v, selected: v === this.value(c) }, v)));
    }
    const reset = el("button", { class: "link", title: `back to the spec's value (${c.default})`,
      onclick: () => { delete this.bindings[c.name]; this.key = ""; this.update(this.controls, null); this.onChange(); } }, "reset");
    const what = c.optional ? "an optional's switch" : c.kind === "range" ? `${c.min}..${c.max}` : `${c.values.length} values`;
    return el("label", { class: "ctl", "data-control": c.name, title: what },
      el("span", { class: "ctl-name" }, c.name), input, label, reset);
  }
}
