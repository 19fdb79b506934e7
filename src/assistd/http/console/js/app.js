// The console's shell: sign-in, the project badge, and a hash router that loads one page
// module per section. A page module exports `render(view, params)`; it may return a
// function that is called when the user navigates away (to stop polling or a stream).

import { ApiError, get, openMode, session } from "./api.js";
import { fill, h, notice, showError } from "./dom.js";

const ROUTES = [
  [/^\/sign-in$/, "sign-in"],
  [/^\/playground$/, "playground"],
  [/^\/assistants$/, "assistants"],
  [/^\/assistants\/new$/, "assistant-form"],
  [/^\/assistants\/(?<id>[^/]+)$/, "assistant-form"],
  [/^\/threads$/, "threads"],
  [/^\/files$/, "files"],
  [/^\/vector-stores$/, "vector-stores"],
  [/^\/vector-stores\/(?<id>[^/]+)$/, "vector-store"],
];

let leave = null;
let open = false; // no key needed (open mode)
// Counts navigations: a page still loading when the user (or a test) moves on must not
// keep polling once it is done.
let turn = 0;

function parse() {
  const raw = location.hash.replace(/^#/, "") || "/playground";
  const [path, search = ""] = raw.split("?");
  return { path, query: Object.fromEntries(new URLSearchParams(search)) };
}

async function route() {
  const mine = ++turn;
  const { path, query } = parse();
  if (leave) {
    try {
      leave();
    } catch (error) {
      console.error(error);
    }
    leave = null;
  }
  notice("");
  const found = ROUTES.find(([pattern]) => pattern.test(path));
  // Each navigation renders into a container of its own: a page still loading when the
  // user moves on writes only into its detached container, never over the newer page.
  const view = h("div", { class: "page" });
  fill(document.getElementById("view"), view);
  if (!found) {
    fill(view, h("h1", {}, "Not found"), h("p", {}, `No page at ${path}.`));
    return;
  }
  const [pattern, name] = found;
  if (!session.key && !open && name !== "sign-in") {
    location.hash = "#/sign-in"; // hashchange routes there
    return;
  }
  const params = { ...query, ...(pattern.exec(path).groups || {}) };
  for (const link of document.querySelectorAll("#nav a")) {
    const current = name.startsWith(link.dataset.section.replace(/s$/, ""));
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  fill(view, h("p", { class: "loading" }, "Loading…"));
  try {
    const page = await import(`./pages/${name}.js`);
    if (mine !== turn) return;
    const done = (await page.render(view, params)) || null;
    if (mine === turn) leave = done;
    else if (done) done();
  } catch (error) {
    if (mine !== turn) return;
    if (error instanceof ApiError && error.status === 401) {
      session.key = "";
      location.hash = "#/sign-in";
      return;
    }
    fill(view, h("h1", {}, "Something went wrong"));
    showError(error);
  }
}

function showProject(project) {
  const badge = document.getElementById("project");
  badge.textContent = project ? `Project: ${project}` : "";
}

/** Whether the server answers with our key, or without one (open mode, loopback only). */
export async function signedIn() {
  try {
    await get("/models");
    return true;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return false;
    throw error;
  }
}

async function start() {
  session.onProject = showProject;
  const signOut = document.getElementById("sign-out");
  signOut.addEventListener("click", () => {
    session.key = "";
    session.project = null;
    showProject(null);
    location.hash = "#/sign-in";
  });
  window.addEventListener("hashchange", () => {
    signOut.hidden = !session.key;
    route();
  });
  signOut.hidden = !session.key;
  if (!location.hash) history.replaceState(null, "", "#/playground");
  open = await openMode();
  if (parse().path !== "/sign-in" && !(await signedIn())) {
    location.hash = "#/sign-in"; // hashchange routes there
    return;
  }
  await route();
}

start().catch(showError);
