// What every page shares: the main region, notices and alerts, the readable cubes, and the
// clean-ups a page registers (a poll to stop) when the reader leaves it.
import { ApiError, get, session } from "/console/api.js";
import { field, h } from "/console/dom.js";

const main = document.getElementById("main");
const cleanups = [];

export const ui = {
  cubes: [],
  notice(text) {
    document.getElementById("notice").textContent = text;
  },
  alert(err) {
    const box = document.getElementById("alert");
    if (!err) {
      box.hidden = true;
      box.textContent = "";
      return;
    }
    box.hidden = false;
    box.textContent = err instanceof ApiError ? `${err.status}: ${err.message}` : String(err.message || err);
  },
  onLeave(fn) {
    cleanups.push(fn);
  },
  page(title, ...children) {
    document.title = `${title} · memcube console`;
    const heading = h("h1", { tabindex: "-1" }, title);
    main.replaceChildren(heading, ...children);
    heading.focus();
  },
  async refreshCubes() {
    const answer = await get("/product/list_cubes", { user_id: session.user() });
    ui.cubes = answer.data.cubes;
    return ui.cubes;
  },
  cubeSelect(selected, onChange) {
    const select = h(
      "select",
      { name: "cube" },
      ui.cubes.map((c) => h("option", { value: c.cube_id, selected: c.cube_id === selected }, c.cube_id)),
    );
    if (onChange) select.addEventListener("change", () => onChange(select.value));
    return field("Cube", select);
  },
};

export function leave() {
  while (cleanups.length) cleanups.pop()();
}
