// A cursor-paged list: Previous/Next buttons over one page of `{data, first_id, last_id,
// has_more}`. Lists that take `before` page back with it; /v1/files takes only `after`,
// so there the cursors already walked are kept to step back.

import { page } from "../api.js";
import { fill, h, showError } from "../dom.js";

/**
 * `path`: the list ("/assistants"); `show(items)`: the rows' node; `query()`: extra query
 * (a filter); `limit`; `before`: whether the list takes `before`.
 * Returns `{node, load(cursor), reload()}`: `node` holds the rows and the buttons.
 */
export function pager(path, show, { limit = 20, before = true, query = () => ({}), label }) {
  const body = h("div", { class: "pager-body" });
  const previous = h("button", { type: "button", onclick: () => go("previous") }, "Previous");
  const next = h("button", { type: "button", onclick: () => go("next") }, "Next");
  const nav = h("nav", { class: "row pager", "aria-label": `${label} pages` }, previous, next);
  let cursor = {}; // {after} or {before}: what the shown page was asked with
  let shown = null; // the shown page
  const walked = []; // without `before`: the `after` cursors of the pages behind this one

  async function load(at = {}) {
    const found = await page(path, { limit, ...query(), ...at });
    // Back at the start: a later reload (after a delete) shows the first page again.
    cursor = at.before && !found.has_more ? {} : at;
    shown = found;
    fill(body, show(found.data));
    // A page asked for `before` a cursor has that cursor after it; one asked `after` a
    // cursor has that cursor before it.
    next.disabled = !(found.has_more && !at.before) && !(at.before && found.data.length);
    previous.disabled = before ? !(at.after || (at.before && found.has_more)) : walked.length === 0;
    nav.hidden = next.disabled && previous.disabled;
  }

  async function go(direction) {
    try {
      if (direction === "next") {
        if (!before) walked.push(cursor.after);
        await load({ after: shown.last_id });
      } else if (before) {
        await load({ before: shown.first_id });
      } else {
        const after = walked.pop();
        await load(after ? { after } : {});
      }
    } catch (error) {
      showError(error);
    }
  }

  return {
    node: h("div", { class: "pager-list" }, body, nav),
    load,
    /** The same page again (after a delete or an upload). */
    reload: () => load(cursor),
    /** Back to the first page (a new filter). */
    restart: () => {
      walked.length = 0;
      return load({});
    },
  };
}
