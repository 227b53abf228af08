// Why a memory changed: its versions as a timeline (added, merged, corrected, archived, undone),
// a word diff between each version and the one before, an undo of the latest change, and the
// items it was merged with or superseded by drawn as links.
import { get, post, session } from "/console/api.js";
import { badge, h, memoryHref, memoryLink, s, short, when } from "/console/dom.js";
import { ui } from "/console/ui.js";

const UNDOABLE = ["merged", "archived", "supersedes"];
const LABELS = {
  merged: "merged (a near-duplicate folded in)",
  archived: "archived (superseded by a correction)",
  supersedes: "corrected (supersedes older items)",
  restored: "restored (by an undo)",
  undone: "undone",
};

// Word-level diff (longest common subsequence): a list of [op, text], op in " ", "+", "-".
export function diffWords(before, after) {
  const a = before.split(/(\s+)/);
  const b = after.split(/(\s+)/);
  if (a.length * b.length > 4_000_000) return [["-", before], ["+", after]];
  const n = a.length;
  const m = b.length;
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const out = [];
  const push = (op, text) => {
    if (out.length && out[out.length - 1][0] === op) out[out.length - 1][1] += text;
    else out.push([op, text]);
  };
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) {
      push(" ", a[i]);
      i++;
      j++;
    } else if (lcs[i + 1][j] >= lcs[i][j + 1]) push("-", a[i++]);
    else push("+", b[j++]);
  }
  while (i < n) push("-", a[i++]);
  while (j < m) push("+", b[j++]);
  return out;
}

function diffView(before, after) {
  if (before === after) return h("p", { class: "muted" }, "Text unchanged (metadata or status changed).");
  return h(
    "p",
    { class: "diff" },
    diffWords(before, after).map(([op, text]) =>
      op === "+" ? h("ins", {}, text) : op === "-" ? h("del", {}, text) : text,
    ),
  );
}

// The items this one is linked to, drawn around it: merged-in near-duplicates, superseded items.
function graph(item, entries) {
  const edges = new Map();
  for (const id of item.metadata.merged_from || []) edges.set(id, "merged in");
  for (const e of entries) {
    const label = e.action === "archived" ? "superseded by" : e.action === "supersedes" ? "supersedes" : e.action === "merged" ? "merged in" : e.action;
    for (const id of e.related_ids || []) if (id !== item.id) edges.set(id, label);
  }
  if (!edges.size) return null;
  const width = 640;
  const height = 260;
  const cx = width / 2;
  const cy = height / 2;
  const nodes = [...edges.entries()].slice(0, 12);
  const svg = s(
    "svg",
    { viewBox: `0 0 ${width} ${height}`, class: "graph", role: "img", "aria-label": `Linked items of ${item.id}` },
    s("title", {}, `Memory ${item.id} and the items it was merged with or superseded by`),
  );
  nodes.forEach(([id, label], k) => {
    const angle = (2 * Math.PI * k) / nodes.length - Math.PI / 2;
    const x = cx + Math.cos(angle) * 230;
    const y = cy + Math.sin(angle) * 95;
    svg.append(
      s("line", { x1: cx, y1: cy, x2: x, y2: y, class: `edge ${label.replace(/ /g, "-")}` }),
      s("text", { x: (cx + x) / 2, y: (cy + y) / 2 - 4, class: "edge-label" }, label),
      s("a", { href: memoryHref(id) }, s("circle", { cx: x, cy: y, r: 9, class: "node" }), s("text", { x, y: y + 24, class: "node-label" }, short(id))),
    );
  });
  svg.append(s("circle", { cx, cy, r: 13, class: "node self" }), s("text", { x: cx, y: cy + 30, class: "node-label" }, "this memory"));
  const list = h(
    "ul",
    { class: "links" },
    [...edges.entries()].map(([id, label]) => h("li", {}, `${label}: `, memoryLink(id, id))),
  );
  return h("section", { class: "card" }, h("h2", {}, "Linked items"), svg, list);
}

function undoable(entries) {
  const undone = new Set(entries.map((e) => e.undoes).filter((v) => v !== undefined));
  return entries.slice().reverse().find((e) => UNDOABLE.includes(e.action) && !undone.has(e.version));
}

export async function historyPage(memoryId) {
  const answer = await get(`/product/get_memory_history/${encodeURIComponent(memoryId)}`, { user_id: session.user() });
  const { memory: item, history: newestFirst, status, version } = answer.data;
  const entries = newestFirst.slice().reverse(); // oldest first
  const m = item.metadata;
  // The text of each version: entry k's `previous` is the item before version entries[k].version.
  const textAfter = (k) => (k + 1 < entries.length ? entries[k + 1].previous.memory : item.memory);
  const first = entries.length ? entries[0].previous : item;
  const rows = [
    h(
      "li",
      { class: "event added" },
      h("h3", {}, badge("added"), ` version 1 · ${when(first.metadata.created_at)}`),
      h("p", {}, first.memory),
      h("p", { class: "muted" }, `task ${first.metadata.task_id || "—"} · session ${first.metadata.session_id}`),
    ),
    ...entries.map((e, k) =>
      h(
        "li",
        { class: `event ${e.action}` },
        h("h3", {}, badge(e.action), ` version ${e.version} · ${when(e.at)} · ${LABELS[e.action] || e.action}`),
        e.reason ? h("p", {}, `Why: ${e.reason}`) : null,
        (e.related_ids || []).length ? h("p", {}, "Related: ", e.related_ids.map((id) => memoryLink(id))) : null,
        e.undoes !== undefined ? h("p", { class: "muted" }, `Undoes version ${e.undoes}`) : null,
        e.merged && e.previous.memory === textAfter(k)
          ? null
          : [h("h4", {}, `Text diff from version ${e.version - 1}`), diffView(e.previous.memory, textAfter(k))],
        e.merged
          ? [
              h("h4", {}, "The near-duplicate folded in, compared with this memory"),
              diffView(e.previous.memory, e.merged.memory),
              h("p", { class: "muted" }, "Folded in: ", memoryLink(e.merged.id, e.merged.id)),
            ]
          : null,
      ),
    ),
  ].reverse();
  const target = undoable(entries);
  const undo = h(
    "button",
    { type: "button", disabled: !target, "aria-describedby": "undo-help" },
    target ? `Undo the ${target.action} change of version ${target.version}` : "Nothing to undo",
  );
  undo.addEventListener("click", async () => {
    ui.alert(null);
    try {
      const receipt = await post("/product/undo_memory", { user_id: session.user(), memory_id: item.id });
      const d = receipt.data;
      ui.notice(`${receipt.message}. Restored: ${d.restored.join(", ") || "none"}; archived: ${d.archived.join(", ") || "none"}; reverted: ${d.reverted.join(", ") || "none"}.`);
      await historyPage(memoryId);
    } catch (err) {
      ui.alert(err);
    }
  });
  ui.page(
    `Memory ${short(item.id)}`,
    h(
      "section",
      { class: "card" },
      h("p", { class: "memory big" }, item.memory),
      h(
        "dl",
        { class: "facts" },
        [
          ["Id", item.id],
          ["Status", status],
          ["Version", String(version)],
          ["Cube", m.cube_id],
          ["Type", m.memory_type],
          ["Key", m.key],
          ["Session", m.session_id],
          ["Event time", m.event_time ? `${when(m.event_time)}${m.event_time_end && m.event_time_end !== m.event_time ? ` – ${when(m.event_time_end)}` : ""}` : "—"],
          ["Tags", [...new Set([...(m.tags || []), ...(m.custom_tags || [])])].join(", ") || "—"],
          ["Sources", (m.sources || []).map((x) => [x.role || x.type, x.chat_time, x.filename || x.file_id].filter(Boolean).join(" · ")).join(" | ") || "—"],
        ].map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
      ),
      h("div", { class: "row" }, undo, h("small", { id: "undo-help" }, "An undo writes new versions that put the earlier state back; nothing is lost.")),
    ),
    graph(item, entries),
    h("section", {}, h("h2", {}, `History (${entries.length} change${entries.length === 1 ? "" : "s"}), newest first`), h("ol", { class: "timeline", reversed: true }, rows)),
  );
}
