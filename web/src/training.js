// The training panel: the options of `cnndsl train`, start / stop / resume, and what the run's
// server-sent events say: loss and accuracy curves, images/s, the time left, the first layer's
// filters and a sample's activation maps (ConvNetJS's view), refreshed as they come.
import { el, $, num, seconds } from "./dom.js";
import { drawChart } from "./chart.js";
import { withToken } from "./api.js";

const OPTS = ["sgd", "momentum", "nesterov", "adagrad", "adadelta", "rmsprop", "adam", "adamw"];

export class Training {
  constructor(box, { onStart, onStop }) {
    this.box = box;
    this.run = null;
    this.reset();
    this.form(onStart, onStop);
  }

  reset() {
    this.progress = [];
    this.epochs = [];
    this.epochCount = 1;
  }

  form(onStart, onStop) {
    const data = el("select", { id: "train-data" }, el("option", { value: "digits" }, "digits"),
      el("option", { value: "synthetic" }, "synthetic"));
    const field = (id, label, attrs) => el("label", { class: "field" }, label, el("input", { id, ...attrs }));
    const opt = el("select", { id: "train-opt" }, OPTS.map((o) => el("option", { value: o, selected: o === "adam" }, o)));
    const options = () => {
      const v = (id) => $("#" + id, this.box).value.trim();
      const o = { epochs: Number(v("train-epochs")), batch: Number(v("train-batch")), opt: opt.value,
        seed: Number(v("train-seed")) };
      if (v("train-lr")) o.lr = Number(v("train-lr"));
      return { data: data.value, out: v("train-out") || null, options: o };
    };
    this.dataSelect = data;
    this.buttons = {
      start: el("button", { id: "train-start", onclick: () => onStart({ ...options(), resume: false }) }, "Train"),
      stop: el("button", { id: "train-stop", disabled: true, onclick: onStop }, "Stop"),
      resume: el("button", { id: "train-resume", disabled: true, onclick: () => onStart({ ...options(), resume: true }) }, "Resume"),
    };
    this.box.replaceChildren(
      el("div", { class: "row wrap" },
        el("label", { class: "field" }, "data", data),
        field("train-epochs", "epochs", { type: "number", min: 1, value: "10" }),
        field("train-batch", "batch", { type: "number", min: 1, value: "32" }),
        el("label", { class: "field" }, "optimizer", opt),
        field("train-lr", "lr", { type: "text", placeholder: "default", size: 6 }),
        field("train-seed", "seed", { type: "number", value: "0" }),
        field("train-out", "run folder", { type: "text", placeholder: "runs/NAME", size: 14 })),
      el("div", { class: "row" }, this.buttons.start, this.buttons.stop, this.buttons.resume,
        el("span", { id: "train-state", class: "muted" }, "no run yet")),
      el("pre", { id: "train-log", class: "log", hidden: true }),
      el("div", { class: "charts" }, el("div", { id: "chart-loss" }), el("div", { id: "chart-acc" })),
      el("div", { class: "visuals" },
        el("div", {}, el("h3", {}, "first layer's filters ", el("span", { id: "filters-note", class: "muted" })),
          el("img", { id: "filters", alt: "" })),
        el("div", {}, el("h3", {}, "activation maps of one sample"), el("div", { id: "activations" }))));
  }

  setData(sources) {
    const keep = ["digits", "synthetic"];
    this.dataSelect.replaceChildren(...[...keep, ...sources].map((s) => el("option", { value: s }, s)));
  }

  setDefaults(path) {
    const stem = (path.split("/").pop() || "net").replace(/\.net$/, "");
    $("#train-out", this.box).placeholder = `runs/${stem}`;
  }

  // ---- the event stream ----------------------------------------------------------------------------
  connect() {
    const es = new EventSource(withToken("api/train/events"));
    const on = (name, fn) => es.addEventListener(name, (e) => fn(JSON.parse(e.data)));
    on("run", (s) => this.onRun(s));
    on("start", (s) => this.onStartEvent(s));
    on("progress", (p) => { this.progress.push(p); this.epochCount = p.epochs; this.status(p); this.drawCurves(); });
    on("epoch_end", (r) => { this.epochs.push(r); this.drawCurves(); });
    on("visuals", (v) => this.onVisuals(v));
    on("end", (e) => this.log(e.final ? `final: epoch ${e.final.epoch}, ` + (e.final.val_acc != null
      ? `validation accuracy ${e.final.val_acc.toFixed(4)}` : `training accuracy ${e.final.train_acc.toFixed(4)}`)
      : "nothing to train: the checkpoint has these epochs already"));
    this.es = es;
  }

  onRun(s) {
    if (s.id !== this.run?.id) { this.reset(); this.drawCurves(); this.logBox().textContent = ""; }
    this.run = s;
    const running = s.state === "running" || s.state === "stopping";
    this.buttons.start.disabled = running;
    this.buttons.stop.disabled = s.state !== "running";
    this.buttons.resume.disabled = running || !(s.state === "stopped" || s.state === "failed" || s.state === "done");
    const where = s.out ? ` (${s.out})` : "";
    const text = { idle: "no run yet", running: `running${where}`, stopping: "stopping after this step",
      stopped: `stopped${where}: Resume continues from the last finished epoch`, done: `done${where}`,
      failed: `failed${where}` }[s.state] || s.state;
    $("#train-state", this.box).textContent = text;
    $("#train-state", this.box).dataset.state = s.state;
    if (s.error) this.log(s.error);
    if (s.state === "done" && s.files?.length) this.log("wrote " + s.files.join(", "));
  }

  onStartEvent(s) {
    this.log(`${s.resumed_from != null ? `resumed after epoch ${s.resumed_from}; ` : ""}${num(s.params)} parameters, ` +
      `${s.train_samples} training / ${s.val_samples} validation samples, on ${s.device}`);
    for (const line of [...(s.notes || []), ...(s.data || [])]) this.log(line);
    this.epochCount = s.options.epochs;
  }

  status(p) {
    $("#train-state", this.box).textContent =
      `epoch ${p.epoch}/${p.epochs}, step ${p.step}/${p.steps} · loss ${p.loss.toFixed(4)} · acc ${p.acc.toFixed(4)} · ` +
      `${p.images_per_s ? Math.round(p.images_per_s).toLocaleString("en-US") : "-"} images/s · ETA ${seconds(p.eta_s)}`;
  }

  logBox() { return $("#train-log", this.box); }

  log(line) {
    const box = this.logBox();
    box.hidden = false;
    box.textContent += (box.textContent ? "\n" : "") + line;
  }

  drawCurves() {
    const xmax = this.epochCount;
    drawChart($("#chart-loss", this.box), [
      { name: "train loss (running)", color: "#2563eb", points: this.progress.map((p) => [p.x, p.loss]) },
      { name: "val loss", color: "#dc2626", dots: true, points: this.epochs.map((r) => [r.epoch, r.val_loss]) },
    ], { title: "loss", xlabel: "epoch", xmax, ymin: 0 });
    drawChart($("#chart-acc", this.box), [
      { name: "train acc (running)", color: "#2563eb", points: this.progress.map((p) => [p.x, p.acc]) },
      { name: "val acc", color: "#dc2626", dots: true, points: this.epochs.map((r) => [r.epoch, r.val_acc]) },
    ], { title: "accuracy", xlabel: "epoch", xmax, ymin: 0, ymax: 1 });
  }

  onVisuals(v) {
    const img = $("#filters", this.box);
    if (v.filters) {
      img.src = v.filters.png;
      img.dataset.x = String(v.x);
      img.title = `${v.filters.layer}: ${v.filters.shape.join("x")} (epoch ${v.x.toFixed(2)})`;
      $("#filters-note", this.box).textContent = `${v.filters.layer} ${v.filters.shape.join("x")} ${v.filters.note}`;
    }
    $("#activations", this.box).replaceChildren(...v.activations.filter((a) => a.png).map((a) =>
      el("figure", { class: "act" }, el("img", { src: a.png, alt: a.name }),
        el("figcaption", {}, `${a.name} ${a.shape.join("x")}`))));
  }
}
