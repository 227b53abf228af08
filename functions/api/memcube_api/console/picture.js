// A picture of a cube: its memories on a timeline by event time, one lane per session, so a
// person sees what period and which conversations a cube covers. Drawn from a window of pages
// (WINDOW_PAGES × 100 memories, fetched page by page), never the whole cube; the window moves.
import { post, session } from "/console/api.js";
import { field, h, link, s, table, when } from "/console/dom.js";
import { ui } from "/console/ui.js";

const PAGE = 100;
const WINDOW_PAGES = 10;
const LANES = 12;

async function windowOf(cube, start) {
  const first = Math.floor(start / PAGE) + 1;
  const read = (page) => post("/product/get_memory", { mem_cube_id: cube, user_id: session.user(), page, page_size: PAGE });
  const head = await read(first);
  const total = head.data.total ?? head.data.text_mem[0].total_nodes;
  const more = Math.min(WINDOW_PAGES, Math.ceil((total - (first - 1) * PAGE) / PAGE)) - 1;
  const rest = await Promise.all(Array.from({ length: Math.max(0, more) }, (_, k) => read(first + 1 + k)));
  return { total, items: [head, ...rest].flatMap((p) => p.data.text_mem[0].memories) };
}

function lanesOf(items) {
  const bySession = new Map();
  for (const item of items) {
    const key = item.metadata.session_id;
    if (!bySession.has(key)) bySession.set(key, []);
    bySession.get(key).push(item);
  }
  const sorted = [...bySession.entries()].sort((a, b) => b[1].length - a[1].length);
  const lanes = sorted.slice(0, LANES);
  const rest = sorted.slice(LANES).flatMap(([, list]) => list);
  if (rest.length) lanes.push([`${sorted.length - LANES} other sessions`, rest]);
  return lanes;
}

function chart(items) {
  const timed = items.filter((i) => i.metadata.event_time);
  const times = timed.map((i) => Date.parse(i.metadata.event_time)).filter((t) => !Number.isNaN(t));
  const lanes = lanesOf(items);
  const width = 900;
  const left = 170;
  const laneH = 26;
  const height = 40 + lanes.length * laneH + 30;
  const svg = s(
    "svg",
    { viewBox: `0 0 ${width} ${height}`, class: "picture", role: "img", "aria-labelledby": "picture-title" },
    s("title", { id: "picture-title" }, `${items.length} memories by event time, one lane per session`),
  );
  if (!times.length) {
    svg.append(s("text", { x: 20, y: 30, class: "axis" }, "No memory in this window has an event time."));
    return svg;
  }
  const DAY = 86_400_000;
  const pad = Math.max(Math.max(...times) - Math.min(...times), DAY) * 0.04;
  const lo = Math.min(...times) - pad;
  const hi = Math.max(...times) + pad;
  const span = hi - lo;
  const x = (t) => left + ((t - lo) / span) * (width - left - 20);
  for (let k = 0; k <= 4; k++) {
    const t = lo + (span * k) / 4;
    svg.append(
      s("line", { x1: x(t), y1: 30, x2: x(t), y2: height - 28, class: "grid" }),
      s("text", { x: x(t), y: height - 10, class: `axis${k === 4 ? " end" : ""}` }, new Date(t).toISOString().slice(0, 10)),
    );
  }
  lanes.forEach(([session, list], k) => {
    const y = 40 + k * laneH;
    svg.append(s("text", { x: 8, y: y + 4, class: "lane-label" }, session.length > 22 ? `${session.slice(0, 21)}…` : session));
    svg.append(s("line", { x1: left, y1: y, x2: width - 20, y2: y, class: "lane" }));
    for (const item of list) {
      const m = item.metadata;
      if (!m.event_time) continue;
      const a = Date.parse(m.event_time);
      const b = m.event_time_end ? Date.parse(m.event_time_end) : a;
      if (Number.isNaN(a)) continue;
      svg.append(
        b > a
          ? s("line", { x1: x(a), y1: y, x2: x(b), y2: y, class: "span" }, s("title", {}, item.memory.slice(0, 120)))
          : s("circle", { cx: x(a), cy: y, r: 4, class: "dot" }, s("title", {}, `${when(m.event_time)}: ${item.memory.slice(0, 120)}`)),
      );
    }
  });
  return svg;
}

function sessionsTable(items) {
  const rows = lanesOf(items).map(([session, list]) => {
    const times = list.map((i) => i.metadata.event_time).filter(Boolean).sort();
    return h(
      "tr",
      {},
      h("th", { scope: "row" }, session),
      h("td", { class: "num" }, String(list.length)),
      h("td", {}, times.length ? when(times[0]) : "—"),
      h("td", {}, times.length ? when(times[times.length - 1]) : "—"),
    );
  });
  return table("Sessions in this window", ["Session", "Memories", "Earliest event", "Latest event"], rows);
}

export async function picturePage(cubeId, query) {
  const cube = cubeId || session.user();
  const start = Math.max(0, Number(new URLSearchParams(query || "").get("start")) || 0);
  const { total, items } = await windowOf(cube, start);
  const base = `#/picture/${encodeURIComponent(cube)}`;
  const size = PAGE * WINDOW_PAGES;
  const withTime = items.filter((i) => i.metadata.event_time).length;
  ui.page(
    `Picture of ${cube}`,
    h("div", { class: "row" }, ui.cubeSelect(cube, (c) => (window.location.hash = `#/picture/${encodeURIComponent(c)}`)), link(`#/memories/${encodeURIComponent(cube)}`, "List")),
    h(
      "nav",
      { class: "pager", "aria-label": "Window" },
      start > 0 ? link(`${base}?start=${Math.max(0, start - size)}`, "Earlier window") : null,
      h("span", {}, total ? `Memories ${start + 1}–${start + items.length} of ${total.toLocaleString("en")} (oldest first); ${withTime} with an event time` : "This cube holds no memory."),
      start + size < total ? link(`${base}?start=${start + size}`, "Next window") : null,
    ),
    h("figure", {}, chart(items), h("figcaption", {}, "Each lane is a conversation (session); dots are memories at their event time, bars span a memory's first to last message.")),
    sessionsTable(items),
  );
}
