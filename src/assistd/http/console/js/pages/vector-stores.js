// Placeholder: this page is being built.

import { fill, h } from "../dom.js";

export async function render(view) {
  fill(view, h("h1", {}, "vector-stores"), h("p", {}, "Coming soon."));
}
