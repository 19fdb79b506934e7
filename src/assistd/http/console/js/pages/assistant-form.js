// Placeholder: this page is being built.

import { fill, h } from "../dom.js";

export async function render(view) {
  fill(view, h("h1", {}, "assistant-form"), h("p", {}, "Coming soon."));
}
