// Recent add tasks, updated live (polled while the page is open), with per-cube parts and
// per-memory outcomes and reasons; the operators' dead letters and their redrive.
import { ApiError, get, post, session } from "/console/api.js";
import { badge, h, memoryLink, table, when } from "/console/dom.js";
import { ui } from "/console/ui.js";

const POLL_MS = 1000;
const TERMINAL = new Set(["completed", "failed", "cancelled"]);

function outcomes(part) {
  if (!part.outcomes.length) return h("span", { class: "muted" }, part.status === "completed" ? "no memory written" : "—");
  return h(
    "ul",
    { class: "outcomes" },
    part.outcomes.map((o) =>
      h(
        "li",
        {},
        badge(o.outcome),
        " ",
        memoryLink(o.memory_id),
        ` ${o.reason}`,
        (o.related_ids || []).length ? h("span", {}, " → ", o.related_ids.map((id) => memoryLink(id))) : null,
      ),
    ),
  );
}

function taskRows(tasks) {
  return tasks.flatMap((t) =>
    t.cubes.map((part, k) =>
      h(
        "tr",
        { "data-task": t.task_id },
        k === 0 ? h("th", { scope: "rowgroup", rowspan: t.cubes.length }, t.task_id, h("br"), h("small", {}, when(t.created_at))) : null,
        k === 0 ? h("td", { rowspan: t.cubes.length }, badge(t.status)) : null,
        h("td", {}, part.cube_id),
        h("td", {}, badge(part.status), part.attempts > 1 ? h("small", {}, ` attempt ${part.attempts}`) : null),
        h("td", {}, outcomes(part), (part.notes || []).map((n) => h("p", { class: "muted" }, n))),
        h("td", {}, part.error ? h("span", { class: "error-text" }, part.error) : "—"),
      ),
    ),
  );
}

export async function tasksPage() {
  const live = h("span", { class: "muted" }, "");
  const body = h("div", {});
  ui.page("Tasks", h("p", {}, "Your recent adds, refreshed every second while this page is open. ", live), body);
  let stopped = false;
  let timer = null;
  ui.onLeave(() => {
    stopped = true;
    clearTimeout(timer);
  });
  const tick = async () => {
    try {
      const answer = await get("/product/scheduler/status", { user_id: session.user() });
      if (stopped) return;
      const tasks = answer.data;
      const running = tasks.filter((t) => !TERMINAL.has(t.status)).length;
      live.textContent = `Updated ${new Date().toLocaleTimeString("en-GB")}: ${running} in progress.`;
      body.replaceChildren(
        tasks.length
          ? table("Recent tasks, newest first", ["Task", "Status", "Cube", "Part", "Memories: outcome and reason", "Error"], taskRows(tasks))
          : h("p", {}, "No tasks yet: add memories through the API (POST /product/add)."),
      );
    } catch (err) {
      if (stopped) return;
      ui.alert(err);
    }
    if (!stopped) timer = setTimeout(tick, document.hidden ? POLL_MS * 5 : POLL_MS);
  };
  await tick();
}

export async function deadLettersPage() {
  let letters;
  try {
    letters = (await get("/product/dead_letters")).data;
  } catch (err) {
    if (err instanceof ApiError && err.status === 403) {
      ui.page("Dead letters", h("p", { class: "warn" }, `Operators only: ${err.message}.`));
      return;
    }
    throw err;
  }
  const boxes = letters.map((l) => h("input", { type: "checkbox", value: l.message_id, "aria-label": `Select ${l.message_id}` }));
  const result = h("div", { "aria-live": "polite" });
  const redrive = async (ids) => {
    ui.alert(null);
    if (ids && !ids.length) {
      ui.alert(new Error("Select at least one dead letter, or redrive all."));
      return;
    }
    try {
      const answer = await post("/product/redrive_dead_letters", ids ? { message_ids: ids } : {});
      const d = answer.data;
      ui.notice(`${answer.message}.`);
      await deadLettersPage();
      document.getElementById("redrive-result")?.replaceChildren(
        h("p", {}, `${answer.message}. Sent: ${d.sent.join(", ") || "none"}. Invalid: ${d.invalid.join(", ") || "none"}.`),
      );
    } catch (err) {
      ui.alert(err);
    }
  };
  const rows = letters.map((l, k) =>
    h(
      "tr",
      {},
      h("td", {}, boxes[k]),
      h("th", { scope: "row" }, l.message_id),
      h("td", {}, l.task_id || "—"),
      h("td", {}, l.cube_id || "—"),
      h("td", { class: "num" }, String(l.attempts)),
      h("td", {}, when(l.failed_at)),
      h("td", { class: "error-text" }, l.reason),
    ),
  );
  result.id = "redrive-result";
  ui.page(
    "Dead letters",
    h("p", {}, "Queued adds given up on, with the reason. Fix the cause, then send them back to their cube's queue: a redrive never adds anything twice."),
    letters.length
      ? table("Dead letters, oldest first", ["", "Message", "Task", "Cube", "Attempts", "Failed at", "Reason"], rows)
      : h("p", {}, "No dead letters."),
    h(
      "div",
      { class: "row" },
      h("button", { type: "button", disabled: !letters.length, onclick: () => redrive(boxes.filter((b) => b.checked).map((b) => b.value)) }, "Redrive selected"),
      h("button", { type: "button", class: "secondary", disabled: !letters.length, onclick: () => redrive(null) }, "Redrive all"),
    ),
    result,
  );
}
