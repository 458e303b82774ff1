// The .net language for CodeMirror 6: a stream tokenizer that follows grammars/cnn.lark's terminals
// (comments, DIMS, FLOAT, INT, NAME, STRING, the operators), and a highlight style for its tags.
// Highlighting only: the analyzer on the server is the one judge of what a spec means.
import { StreamLanguage, HighlightStyle, syntaxHighlighting } from "@codemirror/language";
import { tags as t } from "@lezer/highlight";

const KEYWORDS = new Set(["input", "let", "def", "default", "include", "in"]);
const SWITCHES = new Set(["on", "off", "true", "false", "yes", "no", "True", "False", "each", "same", "valid"]);
const NUMBER = /^(?:[0-9]+\.(?!\.)[0-9]*(?:[eE][-+]?[0-9]+)?|\.[0-9]+(?:[eE][-+]?[0-9]+)?|[0-9]+[eE][-+]?[0-9]+|[0-9]+)/;

function word(stream, state) {
  const w = stream.current();
  const first = state.lineStart;
  state.lineStart = false;
  if (KEYWORDS.has(w) && (first || w === "in")) {
    state.defining = w === "let" || w === "def" ? w : null;
    state.inputLine = w === "input";
    return "keyword";
  }
  if (state.defining) {                      // the name a let or def introduces
    state.defining = null;
    return "variableName.definition";
  }
  if (state.afterAt) {                       // `*N @i`: the repeat's index
    state.afterAt = false;
    return "variableName.definition";
  }
  if (SWITCHES.has(w)) return "bool";
  if (stream.match(/^\s*:(?!=)/, false)) return "labelName";
  if (state.depth > 0 && stream.match(/^\s*=(?!=)/, false)) return "propertyName";
  if (/^[A-Z][A-Z0-9_]*$/.test(w) && w.length > 1) return "typeName";   // a layer kind (CONV, MAXPOOL)
  if (stream.match(/^\s*\(/, false)) return "variableName.function";    // a block or a function
  return "variableName";
}

export const netLanguage = StreamLanguage.define({
  name: "cnndsl",
  startState: () => ({ depth: 0, lineStart: true, defining: null, afterAt: false, inputLine: false }),
  copyState: (s) => ({ ...s }),
  token(stream, state) {
    if (stream.sol() && state.depth === 0) { state.lineStart = true; state.inputLine = false; }
    if (stream.eatSpace()) return null;
    if (state.inputLine && stream.match(/^\w+(?:x\w+)+/)) return "number";     // 224x224x3, 32x32xC, HxWxC
    if (stream.match(/^#\s*note:.*/)) return "docComment";
    if (stream.match(/^#.*/)) return "lineComment";
    if (stream.match(/^"[^"\n]*"?/)) { state.lineStart = false; return "string"; }
    if (stream.match(/^[0-9]+(?:x[0-9]+)+/)) { state.lineStart = false; return "number"; }   // 224x224x3
    if (stream.match(NUMBER)) { state.lineStart = false; return "number"; }
    if (stream.match(/^[A-Za-z_][A-Za-z_0-9]*/)) return word(stream, state);
    state.lineStart = false;
    if (stream.match(/^[([{]/)) { state.depth++; return "bracket"; }
    if (stream.match(/^[)\]}]/)) { state.depth = Math.max(0, state.depth - 1); return "bracket"; }
    if (stream.match("@")) { state.afterAt = true; return "operator"; }
    if (stream.match(/^(?:\.\*|\*\*|\/\/|\.\.|[-*?|+&=\/%:,])/)) return "operator";
    if (stream.match("\\")) return "operator";
    stream.next();
    return "invalid";
  },
  languageData: { commentTokens: { line: "#" } },
});

export const netHighlight = syntaxHighlighting(HighlightStyle.define([
  { tag: t.keyword, color: "#7c3aed", fontWeight: "600" },
  { tag: t.typeName, color: "#0b6bcb", fontWeight: "600" },
  { tag: [t.definition(t.variableName)], color: "#b45309" },
  { tag: t.function(t.variableName), color: "#0f766e" },
  { tag: t.labelName, color: "#9d174d" },
  { tag: t.propertyName, color: "#57534e", fontStyle: "italic" },
  { tag: t.number, color: "#15803d" },
  { tag: t.bool, color: "#c2410c" },
  { tag: t.string, color: "#a16207" },
  { tag: t.lineComment, color: "#6b7280", fontStyle: "italic" },
  { tag: t.docComment, color: "#6b7280", fontStyle: "italic", fontWeight: "600" },
  { tag: t.operator, color: "#374151" },
  { tag: t.invalid, color: "#dc2626", textDecoration: "underline wavy" },
]));
