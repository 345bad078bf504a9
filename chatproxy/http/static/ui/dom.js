// The page's helpers for its elements: find one by id, make one with a class and its text, and
// run a "show more" button's load.

export const $ = (id) => document.getElementById(id);

export function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// Run `load` for the "show more" button `button`, one at a time: the button is only marked
// disabled meanwhile (a disabled one would drop the focus), and a press then does nothing, so a
// page is not listed twice. Once none is left the button goes, and the focus, if it had it, to
// the element `next()` gives (where reading goes on).
export async function loadMore(button, load, next) {
  if (button.getAttribute("aria-disabled") === "true") return;
  const focused = document.activeElement === button;
  button.setAttribute("aria-disabled", "true");
  try {
    await load();
  } finally {
    button.removeAttribute("aria-disabled");
  }
  if (focused && button.hidden) next().focus();
}
