// Threads: the project's threads newest first (GET /v1/threads, an assistd extension),
// a page at a time with cursors, each with its first message; open one in the playground
// or delete it (its messages and runs go with it).
//
// The cursor is kept in the address (replaceState, so no re-render): a reload or a shared
// link shows the same page. `?limit=` sets the page size (20 by default).

import { ApiError, del, get } from "../api.js";
import { confirmDialog, fill, formatTime, h, notice, showError, useStyle } from "../dom.js";

const PREVIEW = 140; // characters of the first message shown in the list

export async function render(view, params) {
  useStyle("threads");
  const limit = Math.min(100, Math.max(1, Number.parseInt(params.limit, 10) || 20));
  // Each page load gets its own controller: the previews of a page left behind stop.
  let loading = new AbortController();
  let cursor = pickCursor(params);
  let shown = null; // the page on screen: {data, first_id, last_id, has_more}

  const heading = h("h1", { tabindex: "-1" }, "Threads");
  const body = h("tbody");
  const table = h(
    "table",
    { class: "stack threads", "aria-label": "Threads of this project, newest first" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["ID", "Created", "Metadata", "First message", "Actions"].map((name) =>
          h("th", { scope: "col" }, name),
        ),
      ),
    ),
    body,
  );
  const empty = h(
    "p",
    { class: "muted", hidden: true },
    "No threads yet. ",
    h("a", { href: "#/playground" }, "Start one in the playground"),
    ".",
  );
  const previous = h("button", { type: "button", onclick: () => turn("before") }, "Previous");
  const next = h("button", { type: "button", onclick: () => turn("after") }, "Next");
  const pager = h("nav", { class: "row pager", "aria-label": "Pages of threads" }, previous, next);

  fill(
    view,
    heading,
    h(
      "p",
      { class: "hint" },
      "This project's threads, newest first. Open one to continue it in the playground.",
    ),
    table,
    empty,
    pager,
  );

  async function load(wanted) {
    loading.abort();
    loading = new AbortController();
    const { signal } = loading;
    table.setAttribute("aria-busy", "true");
    let listed;
    try {
      listed = await get("/threads", { limit, order: "desc", ...wanted }, { signal });
    } catch (error) {
      if (signal.aborted) return; // a later load (or leaving the page) replaced this one
      throw error;
    } finally {
      if (!signal.aborted) table.removeAttribute("aria-busy");
    }
    if (wanted.before && !listed.has_more) {
      // Back at the newest threads: that is the first page, which (unlike a `before` page)
      // refills from below when one of its threads is deleted.
      return load({});
    }
    if (!listed.data.length && wanted.after) {
      // Past the end (the last threads deleted meanwhile): show the newest instead.
      return load({});
    }
    cursor = wanted;
    shown = listed;
    remember(limit, cursor);
    fill(body, listed.data.map((thread) => row(thread, signal)));
    table.hidden = !listed.data.length;
    empty.hidden = listed.data.length > 0;
    // `has_more` speaks for the direction walked: a `before` page was reached from a later
    // one, so a Next always exists there; an `after` page always has a Previous.
    if (cursor.before) {
      previous.disabled = !listed.has_more;
      next.disabled = false;
    } else {
      previous.disabled = !cursor.after;
      next.disabled = !listed.has_more;
    }
    keepFocus();
  }

  function turn(direction) {
    if (!shown || !shown.data.length) return;
    const wanted = direction === "after" ? { after: shown.last_id } : { before: shown.first_id };
    load(wanted).catch(showError);
  }

  // A pager button that just became disabled would drop the keyboard user's focus.
  function keepFocus() {
    const active = document.activeElement;
    if (active !== previous && active !== next) return;
    if (!active.disabled) return;
    const other = active === next ? previous : next;
    if (!other.disabled) other.focus();
    else heading.focus();
  }

  function row(thread, signal) {
    const preview = h("td", { "data-label": "First message", class: "preview" }, "…");
    firstMessage(thread.id, signal).then(
      (text) => {
        if (signal.aborted) return;
        fill(preview, text ? clip(text) : h("span", { class: "muted" }, "No messages"));
        if (text && text.length > PREVIEW) preview.title = text;
      },
      (error) => {
        if (signal.aborted) return;
        fill(preview, h("span", { class: "muted" }, `Not loaded: ${error.message}`));
      },
    );
    const label = `thread ${thread.id}`;
    return h(
      "tr",
      { dataset: { id: thread.id } },
      h("td", { "data-label": "ID", class: "id" }, h("code", {}, thread.id)),
      h("td", { "data-label": "Created", class: "created" }, formatTime(thread.created_at)),
      h("td", { "data-label": "Metadata" }, metadataText(thread.metadata)),
      preview,
      h(
        "td",
        { "data-label": "Actions", class: "controls" },
        h(
          "div",
          { class: "row" },
          h(
            "a",
            {
              href: `#/playground?thread=${encodeURIComponent(thread.id)}`,
              "aria-label": `Open in playground: ${label}`,
            },
            "Open in playground",
          ),
          h(
            "button",
            {
              type: "button",
              class: "danger",
              "aria-label": `Delete ${label}`,
              onclick: () => remove(thread.id),
            },
            "Delete",
          ),
        ),
      ),
    );
  }

  async function remove(threadId) {
    const question = `Delete thread ${threadId}? Its messages and runs are deleted with it.`;
    if (!(await confirmDialog(question, "Delete"))) return;
    try {
      await del(`/threads/${encodeURIComponent(threadId)}`);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) {
        showError(error);
        return;
      }
    }
    // Its row is gone with the reload: put the keyboard user somewhere sure.
    heading.focus();
    await load(cursor);
    notice(`Deleted thread ${threadId}.`, "ok");
  }

  await load(cursor);
  return () => loading.abort();
}

function pickCursor(params) {
  if (params.after) return { after: params.after };
  if (params.before) return { before: params.before };
  return {};
}

function remember(limit, cursor) {
  const query = new URLSearchParams();
  if (limit !== 20) query.set("limit", String(limit));
  for (const [name, value] of Object.entries(cursor)) query.set(name, value);
  const search = query.toString();
  history.replaceState(null, "", `#/threads${search ? `?${search}` : ""}`);
}

/** The thread's first message as plain text ("" when it has none). */
async function firstMessage(threadId, signal) {
  const listed = await get(
    `/threads/${encodeURIComponent(threadId)}/messages`,
    { limit: 1, order: "asc" },
    { signal },
  );
  const message = listed.data[0];
  if (!message) return "";
  const text = message.content
    .map((part) => (part.type === "text" ? part.text.value : "[image]"))
    .join(" ")
    .trim();
  return message.role === "user" ? text : `(${message.role}) ${text}`;
}

function clip(text) {
  return text.length > PREVIEW ? `${text.slice(0, PREVIEW - 1)}…` : text;
}

function metadataText(metadata) {
  const entries = Object.entries(metadata || {});
  if (!entries.length) return h("span", { class: "muted" }, "—");
  return entries.map(([key, value]) => `${key}=${value}`).join(", ");
}
