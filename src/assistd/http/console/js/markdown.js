// A small Markdown renderer for model answers: paragraphs, headings, bold/italic, inline
// code, fenced code blocks (highlighted), lists (nested by indentation), block quotes, rules
// and links. It builds DOM nodes and only ever sets text, so the model's text cannot become
// markup; links are kept only for http(s) and relative targets.
//
// Callers may mark spans of the text to be replaced by nodes of their own (citations): the
// text then holds `\uE000<n>\uE001` placeholders, and `marks.node(n)` gives the node (in code,
// `marks.text(n)` gives the text shown instead).

import { highlight } from "./highlight.js";

const PLACEHOLDER = /\uE000(\d+)\uE001/g;
const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})(?:\s+(.*?))?(?:\s+#+)?\s*$/;
const RULE = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}>\s?/;
const ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
const SAFE_SCHEME = /^https?:\/\//i;
const ANY_SCHEME = /^[a-z][a-z0-9+.-]*:/i;

const NO_MARKS = { node: (n) => document.createTextNode(`[${n}]`), text: (n) => `[${n}]` };

/** Private-use characters that mark placeholders: removed from text the caller doesn't own. */
export function stripMarks(text) {
  return String(text).replace(/[\uE000\uE001]/g, "");
}

export function placeholder(n) {
  return `\uE000${n}\uE001`;
}

/** Render Markdown text into a DocumentFragment. */
export function renderMarkdown(text, marks = NO_MARKS) {
  const fragment = document.createDocumentFragment();
  const lines = String(text || "").replace(/\r\n?/g, "\n").split("\n");
  fragment.append(...blocks(lines, marks));
  return fragment;
}

/** Whether a link target is allowed: http(s) or relative (no other scheme, no `//host`). */
export function safeHref(href) {
  const target = href.trim();
  if (SAFE_SCHEME.test(target)) return true;
  return !ANY_SCHEME.test(target) && !target.startsWith("//") && !/[\s\\]/.test(target);
}

function el(tag, ...children) {
  const node = document.createElement(tag);
  node.append(...children);
  return node;
}

function startsBlock(line) {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || ITEM.test(line);
}

function blocks(lines, marks) {
  const out = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) {
      i += 1;
      continue;
    }
    let found;
    if ((found = FENCE.exec(line))) {
      const [, fence, lang] = found;
      const body = [];
      i += 1;
      // An unclosed fence (still streaming) runs to the end.
      while (i < lines.length && !new RegExp(`^ {0,3}${fence[0]}{${fence.length},}\\s*$`).test(lines[i])) {
        body.push(lines[i]);
        i += 1;
      }
      i += 1;
      out.push(codeBlock(body.join("\n"), lang, marks));
    } else if ((found = HEADING.exec(line))) {
      out.push(el(`h${found[1].length + 2 > 6 ? 6 : found[1].length + 2}`, ...inline(found[2] || "", marks)));
      i += 1;
    } else if (RULE.test(line)) {
      out.push(document.createElement("hr"));
      i += 1;
    } else if (QUOTE.test(line)) {
      const body = [];
      while (i < lines.length && lines[i].trim() && (QUOTE.test(lines[i]) || !startsBlock(lines[i]))) {
        body.push(lines[i].replace(QUOTE, ""));
        i += 1;
      }
      out.push(el("blockquote", ...blocks(body, marks)));
    } else if (ITEM.test(line)) {
      i = list(lines, i, out, marks);
    } else {
      const body = [];
      while (i < lines.length && lines[i].trim() && (!body.length || !startsBlock(lines[i]))) {
        body.push(lines[i].trim());
        i += 1;
      }
      out.push(el("p", ...inline(body.join("\n"), marks)));
    }
  }
  return out;
}

/** One list starting at lines[start]; appends it to `out` and returns the next line index. */
function list(lines, start, out, marks) {
  const [, indent, marker] = ITEM.exec(lines[start]);
  const ordered = /\d/.test(marker);
  const node = document.createElement(ordered ? "ol" : "ul");
  if (ordered && parseInt(marker, 10) !== 1) node.start = parseInt(marker, 10);
  let i = start;
  while (i < lines.length) {
    const found = ITEM.exec(lines[i]);
    if (!found || found[1].length !== indent.length || /\d/.test(found[2]) !== ordered) break;
    const body = [found[3]];
    const width = found[1].length + found[2].length + 1;
    i += 1;
    while (i < lines.length) {
      const next = lines[i];
      if (!next.trim()) {
        // A blank line continues the item only when indented content follows.
        const after = lines.slice(i + 1).find((l) => l.trim());
        if (after === undefined || after.length - after.trimStart().length <= indent.length) break;
        body.push("");
        i += 1;
        continue;
      }
      const depth = next.length - next.trimStart().length;
      if (depth > indent.length) body.push(next.slice(Math.min(depth, width)));
      else if (!startsBlock(next)) body.push(next.trim());
      else break;
      i += 1;
    }
    const children = blocks(body, marks);
    const item = document.createElement("li");
    // A tight item holds its text directly, not in a paragraph.
    if (children[0]?.tagName === "P") item.append(...children.shift().childNodes);
    item.append(...children);
    node.append(item);
    // Blank lines between items of the same list.
    let j = i;
    while (j < lines.length && !lines[j].trim()) j += 1;
    const again = j < lines.length && ITEM.exec(lines[j]);
    if (j > i && again && again[1].length === indent.length) i = j;
  }
  out.push(node);
  return i;
}

function codeBlock(code, lang, marks) {
  const plain = code.replace(PLACEHOLDER, (_, n) => marks.text(Number(n)));
  const codeNode = el("code", ...highlight(plain, lang));
  if (lang) codeNode.dataset.lang = lang;
  const pre = el("pre", codeNode);
  pre.tabIndex = 0; // a wide block scrolls: keyboard users need to reach it
  return pre;
}

const BARE_URL = /^https?:\/\/[^\s<>()\]]*[^\s<>()\].,;:!?'"]/i;
const LINK = /^\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*<?([^\s)>]*)>?(?:\s+"[^"]*")?\s*\)/;

/** Inline Markdown into nodes. */
function inline(text, marks) {
  const out = [];
  let plain = "";
  const flush = () => {
    if (plain) out.push(document.createTextNode(plain));
    plain = "";
  };
  const push = (node) => {
    flush();
    out.push(node);
  };
  let i = 0;
  while (i < text.length) {
    const rest = text.slice(i);
    const c = text[i];
    let found;
    if (c === "\\" && /^\\[\\`*_{}\[\]()#+\-.!>~|]/.test(rest)) {
      plain += text[i + 1];
      i += 2;
    } else if (c === "\uE000" && (found = /^\uE000(\d+)\uE001/.exec(rest))) {
      push(marks.node(Number(found[1])));
      i += found[0].length;
    } else if (c === "`" && (found = /^(`+)([\s\S]*?[^`])\1(?!`)/.exec(rest))) {
      const code = found[2].replace(/^ (.*) $/s, "$1").replace(PLACEHOLDER, (_, n) => marks.text(Number(n)));
      push(el("code", code));
      i += found[0].length;
    } else if (c === "[" && (found = LINK.exec(rest))) {
      const [whole, label, href] = found;
      if (href && safeHref(href)) push(link(href, inline(label, marks)));
      else out.push(...(flush(), inline(label, marks)));
      i += whole.length;
    } else if ((c === "h" || c === "H") && !/\w/.test(text[i - 1] || "") && (found = BARE_URL.exec(rest))) {
      push(link(found[0], [found[0]]));
      i += found[0].length;
    } else if ((c === "*" || c === "_") && (found = emphasis(text, i))) {
      push(el(found.tag, ...inline(found.inner, marks)));
      i = found.end;
    } else {
      plain += c;
      i += 1;
    }
  }
  flush();
  return out;
}

/** `**strong**`, `__strong__`, `*em*`, `_em_` at text[i], or null. */
function emphasis(text, i) {
  const c = text[i];
  const double = text[i + 1] === c;
  const delim = double ? c + c : c;
  const open = i + delim.length;
  if (!text[open] || /\s/.test(text[open])) return null;
  // Underscores inside words (snake_case) are not emphasis.
  if (c === "_" && /\w/.test(text[i - 1] || "")) return null;
  let close = open;
  for (;;) {
    close = text.indexOf(delim, close + 1);
    if (close === -1) return null;
    if (/\s/.test(text[close - 1])) continue;
    if (!double && text[close + 1] === c) {
      close += 1; // part of a `**` run: not our closer
      continue;
    }
    if (c === "_" && /\w/.test(text[close + delim.length] || "")) continue;
    break;
  }
  return { tag: double ? "strong" : "em", inner: text.slice(open, close), end: close + delim.length };
}

function link(href, children) {
  const node = el("a", ...children);
  node.href = href.trim();
  // Links leave the console in a new tab, without a handle back to it.
  node.target = "_blank";
  node.rel = "noopener noreferrer";
  return node;
}
