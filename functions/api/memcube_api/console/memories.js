// Memories of a cube, page by page (get_memory; export_memory for every status, archived
// included), filtered with the search's filter language; search with the request's switches;
// delete with the erasure receipt.
import { ApiError, post, session } from "/console/api.js";
import { badge, field, h, link, memoryLink, table, when } from "/console/dom.js";
import { ui } from "/console/ui.js";

const PAGE_SIZES = [20, 50, 100];
const TYPES = ["", "LongTermMemory", "UserMemory", "WorkingMemory"];

// --- the filter: form fields <-> the hash's query <-> MemOS's filter object -----------------------

const FILTER_FIELDS = ["tags", "info", "memory_type", "session_id", "from", "to", "status"];

function readState(query) {
  const params = new URLSearchParams(query || "");
  const state = {};
  for (const k of [...FILTER_FIELDS, "page", "size", "cursor"]) state[k] = params.get(k) || "";
  return state;
}

function stateHash(base, state) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(state)) if (v) params.set(k, v);
  const q = params.toString();
  return q ? `${base}?${q}` : base;
}

// tags "a, b" -> each tag in tags or custom_tags; info "k=v; k2=v2"; event time from/to.
export function buildFilter(state) {
  const parts = [];
  for (const tag of state.tags.split(",").map((t) => t.trim()).filter(Boolean)) {
    parts.push({ or: [{ tags: tag }, { custom_tags: tag }] });
  }
  for (const pair of state.info.split(";").map((p) => p.trim()).filter(Boolean)) {
    const at = pair.indexOf("=");
    if (at < 1) throw new Error(`info: "${pair}" is not key=value`);
    parts.push({ [`info.${pair.slice(0, at).trim()}`]: pair.slice(at + 1).trim() });
  }
  if (state.memory_type) parts.push({ memory_type: state.memory_type });
  if (state.session_id) parts.push({ session_id: state.session_id });
  if (state.from) parts.push({ event_time: { gte: state.from } });
  if (state.to) parts.push({ event_time: { lte: `${state.to}T23:59:59Z` } });
  if (!parts.length) return null;
  return parts.length === 1 ? parts[0] : { and: parts };
}

function filterForm(state, onApply, { withStatus }) {
  const input = (name, attrs = {}) => h("input", { name, value: state[name], ...attrs });
  const type = h(
    "select",
    { name: "memory_type" },
    TYPES.map((t) => h("option", { value: t, selected: t === state.memory_type }, t || "any")),
  );
  const status = h(
    "select",
    { name: "status" },
    [
      ["", "activated"],
      ["all", "every status (archived included)"],
      ["archived", "archived only"],
    ].map(([v, label]) => h("option", { value: v, selected: v === state.status }, label)),
  );
  const form = h(
    "form",
    { class: "filters", "aria-label": "Filter" },
    field("Tags", input("tags", { placeholder: "travel, work" }), "all of them (tags or custom tags)"),
    field("Info", input("info", { placeholder: "agent_id=bot; app=web" }), "key=value; …"),
    field("Memory type", type),
    field("Session", input("session_id")),
    field("Event time from", input("from", { type: "date" })),
    field("Event time to", input("to", { type: "date" })),
    withStatus ? field("Status", status) : null,
    h("button", { type: "submit" }, "Apply"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const next = {};
    for (const k of FILTER_FIELDS) next[k] = String(data.get(k) || "").trim();
    onApply(next);
  });
  return form;
}

// --- one memory as a row -------------------------------------------------------------------

function sourcesOf(m) {
  const list = (m.sources || []).slice(0, 4).map((src) =>
    h(
      "li",
      {},
      [src.role || src.type, src.chat_time ? ` · ${src.chat_time}` : "", src.filename || src.file_id ? ` · ${src.filename || src.file_id}` : ""].join(""),
    ),
  );
  if ((m.sources || []).length > 4) list.push(h("li", { class: "muted" }, `+${m.sources.length - 4} more`));
  return list.length ? h("ul", { class: "sources", "aria-label": "Source turns" }, list) : h("span", { class: "muted" }, "—");
}

function eventTime(m) {
  if (!m.event_time) return "—";
  return m.event_time_end && m.event_time_end !== m.event_time
    ? `${when(m.event_time)} – ${when(m.event_time_end)}`
    : when(m.event_time);
}

function links(m) {
  const out = [];
  if ((m.merged_from || []).length) out.push(h("span", {}, "merged from ", m.merged_from.map((id) => memoryLink(id))));
  return out;
}

async function deleteMemory(item, cubeId, after) {
  if (!window.confirm(`Delete this memory for good?\n\n${item.memory.slice(0, 200)}`)) return;
  ui.alert(null);
  try {
    const answer = await post("/product/delete_memory", {
      user_id: session.user(),
      writable_cube_ids: [cubeId],
      memory_ids: [item.id],
    });
    await after(); // the page again, without the memory; then the receipt on it
    showReceipt(answer);
  } catch (err) {
    ui.alert(err);
  }
}

export function showReceipt(answer) {
  const d = answer.data;
  const parts = d.cubes.map(
    (c) =>
      `${c.cube_id}: ${c.memories} item(s) removed from the store (${c.history} archived version(s) or history entries), ` +
      `${c.index} index document(s)` +
      (c.queued ? `, ${c.queued} queued add(s)` : "") +
      (c.dead_letters ? `, ${c.dead_letters} dead letter(s)` : ""),
  );
  const text = `Erasure receipt: ${d.deleted} memor${d.deleted === 1 ? "y" : "ies"} deleted. ${parts.join("; ")}` +
    (d.not_found.length ? `. Not found: ${d.not_found.join(", ")}` : "");
  ui.notice(text);
  const receipt = document.getElementById("receipt");
  if (receipt) {
    receipt.hidden = false;
    receipt.replaceChildren(h("h2", {}, "Erasure receipt"), h("p", {}, text));
  }
}

function memoryRow(item, cubeId, after, relativity) {
  const m = item.metadata;
  return h(
    "tr",
    {},
    relativity === undefined ? null : h("td", { class: "num" }, h("meter", { min: 0, max: 1, value: relativity, "aria-label": "relativity" }), ` ${relativity.toFixed(3)}`),
    h("td", { class: "memory" }, h("p", {}, item.memory), links(m)),
    h("td", {}, m.memory_type, h("br"), badge(m.status)),
    h("td", {}, [...new Set([...(m.tags || []), ...(m.custom_tags || [])])].join(", ") || "—"),
    h("td", {}, m.session_id),
    h("td", {}, eventTime(m)),
    h("td", {}, sourcesOf(m)),
    h(
      "td",
      { class: "actions" },
      memoryLink(item.id, "History"),
      m.status === "activated"
        ? h("button", { type: "button", class: "danger", onclick: () => deleteMemory(item, cubeId, after), "aria-label": `Delete memory ${item.id}` }, "Delete")
        : null,
    ),
  );
}

const HEAD = ["Memory", "Type / status", "Tags", "Session", "Event time", "Source turns", "Actions"];

// --- the list ------------------------------------------------------------------------------

export async function memoriesPage(cubeId, query) {
  const cube = cubeId || session.user();
  const state = readState(query);
  const base = `#/memories/${encodeURIComponent(cube)}`;
  const go = (next) => {
    window.location.hash = stateHash(base, next);
  };
  const size = PAGE_SIZES.includes(Number(state.size)) ? Number(state.size) : 20;
  const page = Math.max(1, Number(state.page) || 1);
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  ui.page(
    `Memories of ${cube}`,
    h("div", { class: "row" }, ui.cubeSelect(cube, (c) => (window.location.hash = `#/memories/${encodeURIComponent(c)}`)),
      link(`#/search/${encodeURIComponent(cube)}`, "Search this cube"), link(`#/picture/${encodeURIComponent(cube)}`, "Picture")),
    filterForm(state, (next) => go({ ...next, size: state.size }), { withStatus: true }),
    h("section", { id: "receipt", class: "card", hidden: true, "aria-live": "polite" }),
    body,
  );
  const redraw = () => memoriesPage(cube, query);
  let filter;
  try {
    filter = buildFilter(state);
  } catch (err) {
    ui.alert(err);
    return;
  }
  if (state.status) {
    await exportedPage(cube, state, filter, size, body, go, redraw);
    return;
  }
  let answer;
  try {
    answer = await post("/product/get_memory", {
      mem_cube_id: cube,
      user_id: session.user(),
      page,
      page_size: size,
      ...(filter ? { filter } : {}),
    });
  } catch (err) {
    if (err instanceof ApiError && err.status === 422 && filter) {
      body.replaceChildren(
        h("p", { class: "warn" }, `This server does not filter get_memory (${err.message}). `,
          link(stateHash(`#/search/${encodeURIComponent(cube)}`, state), "Search with this filter")),
      );
      return;
    }
    throw err;
  }
  const [block] = answer.data.text_mem;
  const total = answer.data.total ?? block.total_nodes;
  const pages = Math.max(1, Math.ceil(total / size));
  const rows = block.memories.map((item) => memoryRow(item, cube, redraw));
  const pager = h(
    "nav",
    { class: "pager", "aria-label": "Pages" },
    h("button", { type: "button", disabled: page <= 1, onclick: () => go({ ...state, page: String(page - 1) }) }, "Previous"),
    h("span", {}, `Page ${page} of ${pages} · ${total.toLocaleString("en")} memories`),
    h("button", { type: "button", disabled: page >= pages, onclick: () => go({ ...state, page: String(page + 1) }) }, "Next"),
    field("Per page", h("select", { onchange: (e) => go({ ...state, page: "", size: e.target.value }) },
      PAGE_SIZES.map((n) => h("option", { value: n, selected: n === size }, String(n))))),
  );
  body.replaceChildren(pager, rows.length ? table(`Memories ${(page - 1) * size + 1}–${(page - 1) * size + rows.length}`, HEAD, rows) : h("p", {}, "No memories here."));
}

// Every status: export pages through the stored items, and the server applies the same filter to
// each page (its filter language, as get_memory's); "archived only" keeps the archived ones.
async function exportedPage(cube, state, filter, size, body, go, redraw) {
  const limit = Math.max(size, 100);
  const answer = await post("/product/export_memory", {
    user_id: session.user(),
    cube_id: cube,
    limit,
    ...(filter ? { filter } : {}),
    ...(state.cursor ? { cursor: state.cursor } : {}),
  });
  const items = answer.data.items.filter((i) => state.status !== "archived" || i.metadata.status === "archived");
  const rows = items.map((item) => memoryRow(item, cube, redraw));
  const pager = h(
    "nav",
    { class: "pager", "aria-label": "Pages" },
    state.cursor ? h("button", { type: "button", onclick: () => go({ ...state, cursor: "" }) }, "First") : null,
    h("span", {}, `${items.length} matching items in this page of up to ${limit} stored ones (every status)`),
    h("button", { type: "button", disabled: !answer.data.next_cursor, onclick: () => go({ ...state, cursor: answer.data.next_cursor }) }, "Next"),
  );
  body.replaceChildren(pager, rows.length ? table("Stored items, every status", HEAD, rows) : h("p", {}, "Nothing on this page matches."));
}

// --- search --------------------------------------------------------------------------------

export async function searchPage(cubeId, query) {
  const cube = cubeId || session.user();
  const state = readState(query);
  const params = new URLSearchParams(query || "");
  const input = (name, attrs = {}) => h("input", { name, value: params.get(name) || attrs.value || "", ...attrs });
  const select = (name, options, current) =>
    h("select", { name }, options.map((o) => h("option", { value: o, selected: o === current }, o)));
  const cubes = h(
    "fieldset",
    {},
    h("legend", {}, "Cubes"),
    ui.cubes.map((c) =>
      h("label", { class: "check" }, h("input", { type: "checkbox", name: "cubes", value: c.cube_id, checked: (params.get("cubes") || cube).split(",").includes(c.cube_id) }), ` ${c.cube_id}`),
    ),
  );
  const q = input("q", { type: "search", required: true, maxlength: 4096 });
  const form = h(
    "form",
    { class: "search", role: "search" },
    field("Query", q),
    cubes,
    h(
      "details",
      { open: params.has("q") ? undefined : true },
      h("summary", {}, "Switches"),
      h(
        "div",
        { class: "filters" },
        field("Mode", select("mode", ["fast", "fine", "mixture"], params.get("mode") || "fast")),
        field("Top k", input("top_k", { type: "number", min: 1, max: 100, value: "10" })),
        field("Relativity ≥", input("relativity", { type: "number", min: 0, max: 1, step: "0.05", value: "0.45" })),
        field("Dedup", select("dedup", ["mmr", "sim", "no"], params.get("dedup") || "mmr")),
        field("Memory type", select("search_memory_type", ["All", ...TYPES.slice(1)], params.get("search_memory_type") || "All")),
        field("Threshold (raw cosine)", input("threshold", { type: "number", min: -1, max: 1, step: "0.05" })),
        field("Session boost", input("boost_session")),
        field("Reference time", input("reference_time", { placeholder: "2023-05-08T13:56:00Z" })),
        h("label", { class: "check" }, h("input", { type: "checkbox", name: "rerank", checked: params.get("rerank") !== "false" }), " Rerank"),
      ),
    ),
    h("button", { type: "submit" }, "Search"),
  );
  const results = h("div", { "aria-live": "polite" });
  const filters = filterForm(state, (next) => {
    window.location.hash = stateHash(`#/search/${encodeURIComponent(cube)}`, { ...Object.fromEntries(params), ...next });
  }, { withStatus: false });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const next = Object.fromEntries(params);
    for (const k of ["q", "mode", "top_k", "relativity", "dedup", "search_memory_type", "threshold", "boost_session", "reference_time"]) next[k] = String(data.get(k) || "");
    next.rerank = data.get("rerank") ? "" : "false";
    next.cubes = data.getAll("cubes").join(",");
    window.location.hash = stateHash(`#/search/${encodeURIComponent(cube)}`, next);
  });
  ui.page(`Search`, form, h("h2", {}, "Filter"), filters, h("section", { id: "receipt", class: "card", hidden: true }), results);
  if (!params.get("q")) return;
  const number = (k) => (params.get(k) ? Number(params.get(k)) : undefined);
  let filter;
  try {
    filter = buildFilter(state);
  } catch (err) {
    ui.alert(err);
    return;
  }
  const request = {
    query: params.get("q"),
    user_id: session.user(),
    readable_cube_ids: (params.get("cubes") || cube).split(",").filter(Boolean),
    mode: params.get("mode") || "fast",
    top_k: number("top_k"),
    relativity: number("relativity"),
    dedup: params.get("dedup") || undefined,
    rerank: params.get("rerank") !== "false",
    search_memory_type: params.get("search_memory_type") || undefined,
    threshold: number("threshold"),
    session_id: params.get("boost_session") || undefined,
    reference_time: params.get("reference_time") || undefined,
    ...(filter ? { filter } : {}),
  };
  const answer = await post("/product/search", request);
  const redraw = () => searchPage(cubeId, query);
  const blocks = answer.data.text_mem.map((block) =>
    h(
      "section",
      {},
      h("h2", {}, `${block.cube_id}: ${block.memories.length} hit(s)`),
      block.memories.length
        ? table(`Hits in ${block.cube_id}, best first`, ["Relativity", ...HEAD], block.memories.map((item) => memoryRow(item, block.cube_id, redraw, item.metadata.relativity)))
        : h("p", {}, "No hit above the relativity asked."),
    ),
  );
  results.replaceChildren(
    (answer.data.notes || []).length ? h("ul", { class: "notes", "aria-label": "Notes" }, answer.data.notes.map((n) => h("li", {}, n))) : "",
    ...blocks,
  );
}
