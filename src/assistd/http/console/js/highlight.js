// A small syntax highlighter for code blocks: Python and JavaScript/JSON keywords, strings,
// comments and numbers become <span class="tok-…">. It returns DOM nodes built from text, so
// nothing in the code can become markup.

const PYTHON = new Set(
  (
    "False None True and as assert async await break class continue def del elif else except " +
    "finally for from global if import in is lambda nonlocal not or pass raise return try while " +
    "with yield match case print self"
  ).split(" "),
);
const JAVASCRIPT = new Set(
  (
    "true false null undefined break case catch class const continue debugger default delete do " +
    "else export extends finally for function if import in instanceof let new of return super " +
    "switch this throw try typeof var void while with yield async await static get set"
  ).split(" "),
);

const LANGUAGES = {
  python: { keywords: PYTHON, comment: /#[^\n]*/y, strings: /("""[\s\S]*?(?:"""|$)|'''[\s\S]*?(?:'''|$)|[rbfu]{0,2}"(?:\\.|[^"\\\n])*"?|[rbfu]{0,2}'(?:\\.|[^'\\\n])*'?)/iy },
  javascript: { keywords: JAVASCRIPT, comment: /\/\/[^\n]*|\/\*[\s\S]*?(?:\*\/|$)/y, strings: /("(?:\\.|[^"\\\n])*"?|'(?:\\.|[^'\\\n])*'?|`(?:\\.|[^`\\])*`?)/y },
};
const ALIASES = {
  py: "python",
  python: "python",
  python3: "python",
  js: "javascript",
  javascript: "javascript",
  json: "javascript",
  ts: "javascript",
  typescript: "javascript",
  mjs: "javascript",
};

const NUMBER = /(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|(?:\d[\d_]*\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)[jJnL]?/y;
const WORD = /[A-Za-z_$][\w$]*/y;

/** The language a fence names, or null when we don't highlight it. */
export function language(name) {
  return ALIASES[String(name || "").trim().toLowerCase()] || null;
}

function span(kind, text) {
  const node = document.createElement("span");
  node.className = `tok-${kind}`;
  node.textContent = text;
  return node;
}

/** The code as a list of nodes: text nodes and .tok-kw/.tok-str/.tok-com/.tok-num spans. */
export function highlight(code, lang) {
  const spec = LANGUAGES[language(lang)];
  if (!spec) return [document.createTextNode(code)];
  const out = [];
  let plain = "";
  const flush = () => {
    if (plain) out.push(document.createTextNode(plain));
    plain = "";
  };
  const at = (pattern, index) => {
    pattern.lastIndex = index;
    const found = pattern.exec(code);
    return found && found[0] ? found[0] : null;
  };
  let i = 0;
  while (i < code.length) {
    const previous = i > 0 ? code[i - 1] : "";
    const afterWord = /[\w$]/.test(previous);
    let kind = null;
    let text = at(spec.comment, i);
    if (text) kind = "com";
    else if ((text = at(spec.strings, i))) kind = "str";
    else if (!afterWord && /[\d.]/.test(code[i]) && (text = at(NUMBER, i)) && text !== ".") {
      kind = "num";
    } else if ((text = at(WORD, i))) {
      kind = spec.keywords.has(text) && !afterWord ? "kw" : null;
    } else {
      text = code[i];
    }
    if (kind) {
      flush();
      out.push(span(kind, text));
    } else {
      plain += text;
    }
    i += text.length;
  }
  flush();
  return out;
}
