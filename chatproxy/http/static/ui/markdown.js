// The model's replies as Markdown, made safe. markdown-it turns the text into HTML with raw HTML
// off (a tag in a reply stays visible text), DOMPurify then keeps only the elements and
// attributes Markdown makes, and the result comes back as DOM nodes: this page never assigns
// HTML itself. Links may only go to http, https or mailto addresses, and open in a new tab
// without an opener or a referrer.

import { element } from "./dom.js";
import DOMPurify from "./vendor/dompurify.mjs";
import markdownit from "./vendor/markdown-it.mjs";

const SAFE_URL = /^(?:https?|mailto):/i;
const COPY = "Copy code";
const COPIED = "Copied";

const md = markdownit({ html: false, linkify: true, breaks: true, typographer: false });
// Anything but a web or mail address (javascript:, data:, a path on this server) stays text.
md.validateLink = (url) => SAFE_URL.test(url.trim());

// The page loads no image from elsewhere (its policy would refuse it): an image is a link to it.
md.renderer.rules.image = (tokens, index) => {
  const token = tokens[index];
  const src = md.utils.escapeHtml(token.attrGet("src") || "");
  return `<a href="${src}">${md.utils.escapeHtml(token.content || "image")}</a>`;
};

// markdown-it aligns table cells with a style attribute, which the page's policy refuses: a
// class does the same.
md.core.ruler.push("align_by_class", (state) => {
  for (const token of state.tokens) {
    const style = token.attrGet("style");
    if (style === null) continue;
    token.attrs = token.attrs.filter(([name]) => name !== "style");
    const align = /^text-align:(left|center|right)$/.exec(style);
    if (align) token.attrJoin("class", `align-${align[1]}`);
  }
});

const purify = DOMPurify(window);
const KEEP = {
  ALLOWED_TAGS: [
    "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "li", "ol", "p", "pre", "s", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
  ],
  ALLOWED_ATTR: ["class", "href", "start", "title"],
  ALLOWED_URI_REGEXP: SAFE_URL,
  RETURN_DOM_FRAGMENT: true,
};
purify.addHook("afterSanitizeAttributes", (node) => {
  if (node.nodeName === "A" && node.hasAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});

// A code block gets a bar with its language and a copy button.
function frameCode(pre) {
  const code = pre.querySelector("code");
  const language = code && /(?:^|\s)language-(\S+)/.exec(code.className);
  const bar = element("div", "code-bar");
  bar.append(element("span", "code-language", language ? language[1] : "code"));
  const copy = element("button", "copy ghost small", COPY);
  copy.type = "button";
  bar.append(copy);
  const block = element("div", "code-block");
  pre.replaceWith(block);
  block.append(bar, pre);
}

// A wide table scrolls within the message instead of widening the page.
function frameTable(table) {
  const scroller = element("div", "table-scroll");
  table.replaceWith(scroller);
  scroller.append(table);
}

// HTML as nodes with only what Markdown makes: no script, style, handler or other scheme.
export function sanitize(html) {
  return purify.sanitize(html, KEEP);
}

// Render `text` as Markdown: a fragment of sanitized nodes.
export function renderMarkdown(text) {
  const fragment = sanitize(md.render(text));
  fragment.querySelectorAll("pre").forEach(frameCode);
  fragment.querySelectorAll("table").forEach(frameTable);
  return fragment;
}

// Copy the code of a copy button's block; say whether it worked. Without the clipboard (a page
// served over plain HTTP) the code is selected instead, for the user to copy.
export async function copyCode(button) {
  const pre = button.closest(".code-block").querySelector("pre");
  try {
    // markdown-it ends a block's code with a line break; the copy ends with its last line.
    await navigator.clipboard.writeText(pre.textContent.replace(/\n$/, ""));
  } catch (_) {
    getSelection().selectAllChildren(pre);
    return false;
  }
  button.textContent = COPIED;
  setTimeout(() => {
    button.textContent = COPY;
  }, 2000);
  return true;
}
