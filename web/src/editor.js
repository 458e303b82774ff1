// The editor: CodeMirror 6 with the .net language, and the analyzer's diagnostics as lint marks
// (underlined at their span; message, arithmetic, notes and hint on hover).
import { EditorState } from "@codemirror/state";
import {
  EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter, drawSelection,
} from "@codemirror/view";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { bracketMatching, indentUnit } from "@codemirror/language";
import { searchKeymap, highlightSelectionMatches } from "@codemirror/search";
import { lintGutter, lintKeymap, setDiagnostics } from "@codemirror/lint";
import { netLanguage, netHighlight } from "./netlang.js";

export function makeEditor(parent, { onChange, onSave }) {
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc: "",
      extensions: [
        lineNumbers(), highlightActiveLineGutter(), highlightActiveLine(), drawSelection(), history(),
        bracketMatching(), highlightSelectionMatches(), lintGutter(), indentUnit.of("  "),
        netLanguage, netHighlight,
        keymap.of([{ key: "Mod-s", run: () => { onSave(); return true; }, preventDefault: true },
          ...defaultKeymap, ...historyKeymap, ...searchKeymap, ...lintKeymap, indentWithTab]),
        EditorView.updateListener.of((u) => { if (u.docChanged) onChange(u); }),
        EditorView.theme({ "&": { height: "100%" }, ".cm-scroller": { fontFamily: "var(--mono)" } }),
      ],
    }),
  });
  return view;
}

export function setText(view, text) {
  view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
}

// The offset of a 1-based (line, column) whose column counts characters (code points, as Python
// does) in CodeMirror's UTF-16 document; a position past the end is clamped.
export function offsetAt(doc, line, col) {
  if (line > doc.lines) return doc.length;
  const l = doc.line(Math.max(1, line));
  const s = l.text;
  let i = 0;
  for (let c = 1; c < col && i < s.length; c++) i += s.codePointAt(i) > 0xffff ? 2 : 1;
  return l.from + i;
}

function range(doc, d) {
  const from = offsetAt(doc, d.line, d.col);
  let to = d.end_line ? offsetAt(doc, d.end_line, d.end_col) : from;
  if (to <= from) to = Math.min(doc.length, from + 1);           // an empty span still shows a mark
  return { from: Math.min(from, doc.length), to };
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

// What hovering a mark shows: the message with its code, the arithmetic, the notes, the hint.
export function describe(d) {
  const box = el("div", "diag");
  box.append(el("div", "diag-message", `${d.code}: ${d.message}`));
  if (d.arithmetic) box.append(el("div", "diag-arithmetic", d.arithmetic));
  for (const n of d.notes || []) {
    box.append(el("div", "diag-note", `note${n.line ? ` (${n.here ? "" : n.file + ":"}${n.line}:${n.col})` : ""}: ${n.message}`));
  }
  if (d.hint) box.append(el("div", "diag-hint", `hint: ${d.hint}`));
  return box;
}

// The analyzer's diagnostics that point into this text, as CodeMirror lint diagnostics; a note
// that points into it too is an "info" mark of its own ("the other branch is here").
export function showDiagnostics(view, diagnostics) {
  const doc = view.state.doc;
  const marks = [];
  for (const d of diagnostics) {
    if (d.here && d.line) {
      marks.push({ ...range(doc, d), severity: d.severity === "error" ? "error" : "warning",
        source: d.code, message: `${d.code}: ${d.message}`, renderMessage: () => describe(d) });
    }
    for (const n of d.notes || []) {
      if (n.here && n.line) {
        marks.push({ ...range(doc, n), severity: "info", source: d.code, message: `note: ${n.message}`,
          renderMessage: () => el("div", "diag-note", `note: ${n.message} (${d.code}: ${d.message})`) });
      }
    }
  }
  view.dispatch(setDiagnostics(view.state, marks));
}

export function goTo(view, line, col) {
  const pos = offsetAt(view.state.doc, line, col || 1);
  view.dispatch({ selection: { anchor: pos }, scrollIntoView: true });
  view.focus();
}
