// A vector store's search box: the query and how many results, then the ranked results
// with their file, score, attributes and the text of each matching chunk.

import { post } from "../api.js";
import { field, fill, h, showError } from "../dom.js";
import { clearInvalid, invalid } from "./validate.js";

function attributes(values) {
  const entries = Object.entries(values || {});
  if (!entries.length) return null;
  return h(
    "ul",
    { class: "attributes", "aria-label": "Attributes" },
    entries.map(([key, value]) => h("li", {}, `${key}: ${JSON.stringify(value)}`)),
  );
}

function result(item, index) {
  return h(
    "li",
    { class: "result" },
    h(
      "div",
      { class: "row result-head" },
      h("span", { class: "rank" }, `#${index + 1}`),
      h("strong", { class: "filename" }, item.filename),
      h("span", { class: "score" }, `score ${item.score.toFixed(3)}`),
    ),
    attributes(item.attributes),
    item.content.map((part) => h("blockquote", { class: "chunk" }, part.text)),
  );
}

export function searchPanel(storePath) {
  const query = h("input", { type: "search", required: true });
  const max = h("input", { type: "number", min: 1, max: 50, step: 1, value: 5 });
  const results = h("div", { class: "results", "aria-live": "polite" });
  const button = h("button", { type: "submit", class: "primary" }, "Search");
  const form = h(
    "form",
    { class: "card", novalidate: true, "aria-label": "Search" },
    h("h2", {}, "Search"),
    h("div", { class: "row search-controls" }, field("Query", query), field("Max results", max)),
    h("div", { class: "actions" }, button),
    results,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearInvalid(form);
    const count = Number(max.value || 10);
    if (!query.value.trim()) return invalid(query, "Type what to look for.");
    if (!Number.isInteger(count) || count < 1 || count > 50) {
      return invalid(max, "A whole number from 1 to 50.");
    }
    button.disabled = true;
    try {
      const found = await post(`${storePath}/search`, {
        query: query.value,
        max_num_results: count,
      });
      fill(
        results,
        found.data.length
          ? h("ol", { class: "ranked", "aria-label": "Search results" }, found.data.map(result))
          : h("p", { class: "hint" }, "Nothing found."),
      );
    } catch (error) {
      showError(error);
    } finally {
      button.disabled = false;
    }
  });
  return form;
}
