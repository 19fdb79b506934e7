// Sign-in: paste an API key; it is kept in this tab's session storage only.

import { ApiError, session } from "../api.js";
import { signedIn } from "../app.js";
import { field, fill, h, showError } from "../dom.js";

export async function render(view) {
  const key = h("input", {
    type: "password",
    name: "api-key",
    autocomplete: "off",
    placeholder: "sk-…",
    required: true,
  });
  const form = h(
    "form",
    { class: "card narrow", "aria-label": "Sign in" },
    h("h1", {}, "Sign in"),
    h("p", {}, "Paste an API key of the project to work in. It stays in this browser tab."),
    field("API key", key),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Sign in")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    session.key = key.value.trim();
    try {
      if (await signedIn()) {
        location.hash = "#/playground";
        return;
      }
      session.key = "";
      showError(new ApiError(401, { message: "This key is not valid on this server." }));
    } catch (error) {
      showError(error);
    }
  });
  const open = !session.key && (await signedIn());
  fill(
    view,
    form,
    open
      ? h(
          "p",
          { class: "hint" },
          "This server has no keys configured (open mode, loopback only): no key is needed. ",
          h("a", { href: "#/playground" }, "Go to the playground"),
        )
      : null,
  );
  key.focus();
}
