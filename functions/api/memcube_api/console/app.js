// The console's shell: sign-in, navigation (hash routes, so no URL carries anything secret),
// and the cubes page. Each page renders into <main> from the API's answers.
import { ApiError, call, post, session } from "/console/api.js";
import { badge, field, h, link, table } from "/console/dom.js";
import { historyPage } from "/console/history.js";
import { memoriesPage, searchPage } from "/console/memories.js";
import { picturePage } from "/console/picture.js";
import { deadLettersPage, tasksPage } from "/console/tasks.js";
import { leave, ui } from "/console/ui.js";

function signIn(reason) {
  document.getElementById("nav").hidden = true;
  document.getElementById("signout").hidden = true;
  document.getElementById("who").textContent = "";
  const key = h("input", { type: "password", name: "key", autocomplete: "off", spellcheck: "false" });
  const user = h("input", { type: "text", name: "user_id", autocomplete: "username" });
  const form = h(
    "form",
    { class: "card narrow", "aria-describedby": "signin-help" },
    h(
      "p",
      { id: "signin-help" },
      "Enter your API key once: it is kept in this browser tab only (sessionStorage) and sent only ",
      "in the Authorization header to this server's API. With keys off (the loopback-only embedded ",
      "default) leave it empty and give a user id; a service or admin key may also name a user.",
    ),
    field("API key", key, "mck_… (shown once by `memcube keys create`)"),
    field("User id", user, "optional with a key: the key's own user by default"),
    h("button", { type: "submit" }, "Sign in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    ui.alert(null);
    try {
      const answer = await call("GET", "/product/list_cubes", {
        params: { user_id: user.value.trim() },
        key: key.value.trim(),
      });
      session.save(key.value.trim(), answer.data.user_id, answer.data.scopes);
      ui.cubes = answer.data.cubes;
      key.value = "";
      if (window.location.hash === "#/cubes") route();
      else window.location.hash = "#/cubes";
    } catch (err) {
      ui.alert(err);
    }
  });
  ui.page("Sign in", reason ? h("p", { class: "warn" }, reason) : null, form);
}

function grantForm(cube, redraw) {
  const target = h("input", { type: "text", name: "target_user_id", required: true });
  const permission = h(
    "select",
    { name: "permission" },
    h("option", { value: "read" }, "read"),
    h("option", { value: "write" }, "write (implies read)"),
  );
  const change = async (route) => {
    ui.alert(null);
    try {
      const body = { user_id: session.user(), cube_id: cube.cube_id, target_user_id: target.value.trim() };
      const answer = await post(route, { ...body, permission: permission.value });
      ui.notice(answer.message);
      await redraw();
    } catch (err) {
      ui.alert(err);
    }
  };
  const form = h(
    "form",
    { class: "inline", "aria-label": `Grants of ${cube.cube_id}` },
    field("User", target),
    field("Right", permission),
    h("button", { type: "submit" }, "Grant"),
    h("button", { type: "button", class: "secondary", onclick: () => change("/product/revoke_cube") }, "Revoke"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    change("/product/grant_cube");
  });
  return form;
}

function grantList(users) {
  if (users === null || users === undefined) return h("span", { class: "muted" }, "owner only");
  return users.length ? users.join(", ") : h("span", { class: "muted" }, "none");
}

async function cubesPage() {
  const cubes = await ui.refreshCubes();
  const rows = cubes.map((c) =>
    h(
      "tr",
      {},
      h("th", { scope: "row" }, c.cube_id),
      h("td", {}, c.kind === "personal" ? "personal" : "knowledge base"),
      h("td", {}, c.owner_id),
      h("td", {}, badge(c.role)),
      h("td", { class: "num" }, c.memories.toLocaleString("en")),
      h("td", {}, c.kind === "personal" ? h("span", { class: "muted" }, "yours alone") : grantList(c.readers)),
      h("td", {}, c.kind === "personal" ? h("span", { class: "muted" }, "yours alone") : grantList(c.writers)),
      h(
        "td",
        { class: "actions" },
        link(`#/memories/${encodeURIComponent(c.cube_id)}`, "Memories"),
        link(`#/picture/${encodeURIComponent(c.cube_id)}`, "Picture"),
        c.role === "owner" && c.kind === "knowledge_base" ? grantForm(c, cubesPage) : null,
      ),
    ),
  );
  ui.page(
    "Cubes",
    h("p", {}, `Signed in as ${session.user()}. Your personal cube and the knowledge bases you may read.`),
    table(
      "Readable cubes",
      ["Cube", "Kind", "Owner", "Your right", "Memories", "Readers", "Writers", "Actions"],
      rows,
    ),
  );
}

const ROUTES = [
  [/^#\/cubes$/, cubesPage],
  [/^#\/memories(?:\/([^?]+))?(?:\?(.*))?$/, memoriesPage],
  [/^#\/search(?:\/([^?]+))?(?:\?(.*))?$/, searchPage],
  [/^#\/memory\/([^?]+)$/, historyPage],
  [/^#\/tasks$/, tasksPage],
  [/^#\/dead-letters$/, deadLettersPage],
  [/^#\/picture(?:\/([^?]+))?(?:\?(.*))?$/, picturePage],
];

async function route() {
  leave();
  ui.alert(null);
  if (!session.user()) {
    signIn();
    return;
  }
  ui.notice(""); // a notice belongs to the page it was given on
  document.getElementById("nav").hidden = false;
  document.getElementById("signout").hidden = false;
  document.getElementById("who").textContent = session.user();
  const hash = window.location.hash || "#/cubes";
  for (const a of document.querySelectorAll("#nav a")) {
    if (hash.startsWith(a.getAttribute("href"))) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const found = ROUTES.find(([pattern]) => pattern.test(hash));
  if (!found) {
    window.location.hash = "#/cubes";
    return;
  }
  const [pattern, page] = found;
  const [, ...groups] = hash.match(pattern);
  try {
    if (!ui.cubes.length) await ui.refreshCubes();
    await page(...groups.map((g) => (g === undefined ? undefined : decodeURIComponent(g))));
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      session.clear();
      signIn(`Signed out: ${err.message}`);
      return;
    }
    ui.page("Something went wrong");
    ui.alert(err);
  }
}

document.getElementById("signout").addEventListener("click", () => {
  session.clear();
  ui.cubes = [];
  ui.notice("Signed out: the key was removed from this tab.");
  window.location.hash = "";
  signIn();
});
window.addEventListener("hashchange", route);
route();
