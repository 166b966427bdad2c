// Draws a Zoom chatbot card (the `content` object of a send or edit) as DOM nodes.
//
// Every string from a card goes into the page through textContent or an attribute, never
// parsed as markup. Links keep only http(s) and mailto addresses. `act` is how an element reports a
// person's action: act.click(item), act.select(values), act.field(key, value),
// act.edit(origin, target).

const SAFE_SCHEMES = ["http:", "https:", "mailto:"];

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

export function safeUrl(value) {
  if (typeof value !== "string" || !value) return null;
  try {
    const url = new URL(value, window.location.href);
    return SAFE_SCHEMES.includes(url.protocol) ? url.href : null;
  } catch {
    return null;
  }
}

// Images may also be inline data (a bot can send a generated chart that way).
export function safeImage(value) {
  if (typeof value === "string" && /^data:image\/(png|gif|jpeg|webp);base64,[A-Za-z0-9+/=]+$/.test(value)) return value;
  const url = safeUrl(value);
  return url && !url.startsWith("mailto:") ? url : null;
}

function link(href, text, className) {
  const url = safeUrl(href);
  if (!url) return el("span", className, text);
  const a = el("a", className, text);
  a.href = url;
  a.target = "_blank";
  a.rel = "noopener noreferrer";
  return a;
}

function applyStyle(node, style) {
  if (!style || typeof style !== "object") return;
  if (typeof style.color === "string" && /^#?[0-9a-zA-Z]{3,8}$/.test(style.color)) {
    node.style.color = style.color.startsWith("#") ? style.color : `#${style.color}`;
  }
  if (style.bold) node.style.fontWeight = "600";
  if (style.italic) node.style.fontStyle = "italic";
}

function color(value) {
  return typeof value === "string" && /^#?[0-9a-fA-F]{3,8}$/.test(value)
    ? (value.startsWith("#") ? value : `#${value}`)
    : null;
}

// Zoom's chat markdown: *bold* (and **bold**), _italic_, ~strike~, `code`, ```blocks```,
// <url|label> and <url> links, [label](url), bare URLs, "> " quotes. Built as nodes, so text
// that looks like HTML stays text.
const INLINE = [
  ["code", /`([^`\n]+)`/],
  ["bold", /\*\*([^*\n]+)\*\*/],
  ["bold", /\*([^*\n]+)\*/],
  ["italic", /(?<![\w])_([^_\n]+)_(?![\w])/],
  ["strike", /~([^~\n]+)~/],
  ["zlink", /<((?:https?|mailto):[^|>\s]+)(?:\|([^>]+))?>/],
  ["mdlink", /\[([^\]\n]+)\]\(((?:https?|mailto):[^)\s]+)\)/],
  ["url", /(?<![<(|])\bhttps?:\/\/[^\s<>()]+[^\s<>().,;:!?'"]/],
];

function inline(text, parent) {
  let rest = text;
  while (rest) {
    let best = null;
    for (const [kind, pattern] of INLINE) {
      const m = pattern.exec(rest);
      if (m && (best === null || m.index < best.m.index)) best = { kind, m };
    }
    if (best === null) {
      parent.append(document.createTextNode(rest));
      return;
    }
    const { kind, m } = best;
    if (m.index) parent.append(document.createTextNode(rest.slice(0, m.index)));
    if (kind === "code") parent.append(el("code", "md-code", m[1]));
    else if (kind === "zlink") parent.append(link(m[1], m[2] || m[1], "md-link"));
    else if (kind === "mdlink") parent.append(link(m[2], m[1], "md-link"));
    else if (kind === "url") parent.append(link(m[0], m[0], "md-link"));
    else {
      const node = el(kind === "bold" ? "strong" : kind === "italic" ? "em" : "s");
      inline(m[1], node);
      parent.append(node);
    }
    rest = rest.slice(m.index + m[0].length);
  }
}

export function markdown(text, className) {
  const root = el("div", `md ${className || ""}`.trim());
  const parts = String(text).split(/```/);
  parts.forEach((part, i) => {
    if (i % 2 === 1) {
      root.append(el("pre", "md-pre", part.replace(/^\n/, "")));
      return;
    }
    const lines = part.split("\n");
    lines.forEach((line, j) => {
      if (line.startsWith("> ")) {
        const quote = el("blockquote", "md-quote");
        inline(line.slice(2), quote);
        root.append(quote);
      } else {
        inline(line, root);
        if (j < lines.length - 1 && !lines[j + 1].startsWith("> ")) root.append(el("br"));
      }
    });
  });
  return root;
}

function richText(text, md, className, style) {
  if (md) return markdown(text ?? "", className);
  const node = el("div", `plain ${className || ""}`.trim(), text ?? "");
  applyStyle(node, style);
  return node;
}

function textOf(value) {
  if (value && typeof value === "object") return value.text ?? "";
  return value ?? "";
}

function formatTs(ts) {
  const n = Number(ts);
  if (!Number.isFinite(n) || n <= 0) return "";
  const date = new Date(n < 1e12 ? n * 1000 : n);
  return date.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

function formatSize(bytes) {
  const n = Number(bytes);
  if (!Number.isFinite(n) || n < 0) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

const BUTTON_STYLES = { Primary: "primary", Default: "default", Danger: "danger", Disabled: "disabled" };

function actions(block, act) {
  const row = el("div", "z-actions");
  const items = Array.isArray(block.items) ? block.items : [];
  const limit = Number.isInteger(block.limit) && block.limit > 0 ? block.limit : items.length;
  const button = (item) => {
    const style = BUTTON_STYLES[item.style] || "default";
    const b = el("button", `z-button z-button-${style}`, item.text);
    b.type = "button";
    b.dataset.value = item.value ?? "";
    if (style === "disabled") b.disabled = true;
    else b.addEventListener("click", () => act.click(item, b));
    return b;
  };
  items.slice(0, limit).forEach((item) => row.append(button(item)));
  if (items.length > limit) {
    const more = el("details", "z-overflow");
    more.append(el("summary", "z-button z-button-default", "More"));
    const menu = el("div", "z-overflow-menu");
    items.slice(limit).forEach((item) => menu.append(button(item)));
    more.append(menu);
    row.append(more);
  }
  return row;
}

function select(block, act, ctx) {
  const wrap = el("div", "z-select");
  if (block.text) wrap.append(el("label", "z-select-label", block.text));
  const box = el("select", "z-select-box");
  box.setAttribute("aria-label", block.text || "Select");
  let items = Array.isArray(block.select_items) ? block.select_items : [];
  if (block.static_source === "members") items = ctx.people.map((p) => ({ text: p.name, value: p.jid }));
  if (block.static_source === "channels") {
    items = ctx.places.filter((p) => p.jid).map((p) => ({ text: p.name, value: p.jid }));
  }
  const placeholder = el("option", "", block.static_source ? `Select a ${block.static_source === "members" ? "member" : "channel"}` : "Select an option");
  placeholder.value = "";
  placeholder.disabled = true;
  box.append(placeholder);
  const selected = block.selected_item && block.selected_item.value;
  items.forEach((item) => {
    const option = el("option", "", item.text);
    option.value = item.value ?? "";
    if (selected !== undefined && item.value === selected) option.selected = true;
    box.append(option);
  });
  if (selected === undefined) placeholder.selected = true;
  box.addEventListener("change", () => act.select([box.value], box));
  wrap.append(box);
  return wrap;
}

function fields(block, act, md) {
  const grid = el("div", "z-fields");
  const items = Array.isArray(block.items) ? block.items : [];
  items.forEach((item) => {
    const cell = el("div", item.short ? "z-field z-field-short" : "z-field");
    cell.append(el("div", "z-field-key", item.key));
    if (item.editable) {
      const input = el("input", "z-field-input");
      input.value = item.value === " " ? "" : (item.value ?? "");
      input.setAttribute("aria-label", item.key ?? "field");
      input.addEventListener("keydown", (e) => {
        if (e.key === "Enter") act.field(item.key, input.value, input);
      });
      cell.append(input);
    } else {
      cell.append(richText(item.value, md, "z-field-value"));
    }
    grid.append(cell);
  });
  return grid;
}

function message(block, act, md) {
  const mdOn = (md || block.is_markdown_support) && !block.link;
  if (block.link) {
    const wrap = el("div", "z-message");
    const a = link(block.link, block.text, "z-message-link");
    applyStyle(a, block.style);
    wrap.append(a);
    return wrap;
  }
  const node = richText(block.text, mdOn, "z-message", block.style);
  if (block.editable && act.edit) {
    // Click to edit, Enter to send (interactive_message_editable), Escape to leave it be.
    node.classList.add("z-editable");
    node.title = "Click to edit";
    node.tabIndex = 0;
    const start = () => {
      const input = el("input", "z-field-input");
      input.value = block.text ?? "";
      input.setAttribute("aria-label", "Edit message");
      input.addEventListener("keydown", (e) => {
        if (e.key === "Enter") act.edit(block.text ?? "", input.value, input);
        if (e.key === "Escape") input.replaceWith(node);
      });
      node.replaceWith(input);
      input.focus();
    };
    node.addEventListener("click", start);
    node.addEventListener("keydown", (e) => { if (e.key === "Enter") start(); });
  }
  return node;
}

function attachment(block) {
  const box = el("div", "z-attachment");
  const img = safeImage(block.img_url);
  if (img) {
    const pic = el("img", "z-attachment-img");
    pic.src = img;
    pic.alt = textOf(block.information?.title) || "attachment";
    box.append(pic);
  } else {
    box.append(el("div", "z-file-icon", (block.ext || "file").slice(0, 4).toUpperCase()));
  }
  const info = el("div", "z-attachment-info");
  info.append(link(block.resource_url, textOf(block.information?.title) || block.resource_url || "", "z-attachment-title"));
  const description = textOf(block.information?.description);
  if (description) info.append(el("div", "z-attachment-desc", description));
  const meta = [block.ext, formatSize(block.size)].filter(Boolean).join(" · ");
  if (meta) info.append(el("div", "z-attachment-meta", meta));
  box.append(info);
  return box;
}

function file(block) {
  const box = el("div", "z-attachment z-file");
  const icon = safeImage(block.icon_url);
  if (icon) {
    const pic = el("img", "z-file-img");
    pic.src = icon;
    pic.alt = "";
    box.append(pic);
  } else box.append(el("div", "z-file-icon", "FILE"));
  const info = el("div", "z-attachment-info");
  info.append(link(block.title?.file_url, textOf(block.title), "z-attachment-title"));
  const description = textOf(block.description);
  if (description) info.append(el("div", "z-attachment-desc", description));
  box.append(info);
  return box;
}

function divider(block) {
  const hr = el("hr", "z-divider");
  const style = block.style || {};
  if (style.bold) hr.classList.add("z-divider-bold");
  if (style.dotted) hr.classList.add("z-divider-dotted");
  const c = color(style.color);
  if (c) hr.style.borderTopColor = c;
  return hr;
}

function progress(block) {
  const raw = Number(block.value);
  const value = Math.max(0, Math.min(100, Number.isFinite(raw) ? raw : 0));
  const wrap = el("div", "z-progress");
  wrap.setAttribute("role", "progressbar");
  wrap.setAttribute("aria-valuenow", String(value));
  wrap.setAttribute("aria-valuemin", "0");
  wrap.setAttribute("aria-valuemax", "100");
  const bar = el("div", "z-progress-bar");
  bar.style.width = `${value}%`;
  wrap.append(bar, el("span", "z-progress-label", `${Math.round(value)}%`));
  return wrap;
}

function alertBox(block, md) {
  const level = ["info", "success", "warning", "error"].includes(block.level) ? block.level : "info";
  const box = el("div", `z-alert z-alert-${level}`);
  box.setAttribute("role", "alert");
  box.append(richText(block.text, md, "z-alert-text"));
  if (block.closable) {
    const close = el("button", "z-alert-close", "×");
    close.type = "button";
    close.setAttribute("aria-label", "Close");
    close.addEventListener("click", () => box.remove());
    box.append(close);
  }
  return box;
}

function images(block) {
  const list = (Array.isArray(block.images) ? block.images : []).filter((i) => i && safeImage(i.image_url));
  const wrap = el("div", "z-images");
  if (!list.length) return wrap;
  let index = Math.max(0, Math.min(list.length - 1, Number(block.cur_index) || 0));
  const pic = el("img", "z-images-img");
  const counter = el("span", "z-images-count");
  const show = () => {
    pic.src = safeImage(list[index].image_url);
    pic.alt = list[index].alt_text || "";
    counter.textContent = `${index + 1} / ${list.length}`;
  };
  wrap.append(pic);
  if (list.length > 1) {
    const nav = el("div", "z-images-nav");
    const prev = el("button", "z-page-button", "‹");
    const next = el("button", "z-page-button", "›");
    prev.type = next.type = "button";
    prev.setAttribute("aria-label", "Previous image");
    next.setAttribute("aria-label", "Next image");
    prev.addEventListener("click", () => { index = (index + list.length - 1) % list.length; show(); });
    next.addEventListener("click", () => { index = (index + 1) % list.length; show(); });
    nav.append(prev, counter, next);
    wrap.append(nav);
  }
  show();
  return wrap;
}

function formNote(node) {
  node.title = "Form elements submit through Zoom's form events, whose shape is unpublished: the console shows them but sends nothing.";
  return node;
}

function choices(block, kind) {
  const group = el("div", `z-choices z-${kind}`);
  group.setAttribute("role", kind === "radio" ? "radiogroup" : "group");
  const name = `${block.action_id || "choice"}-${Math.random().toString(36).slice(2)}`;
  const options = Array.isArray(block.options) ? block.options : [];
  options.forEach((option) => {
    const label = el("label", "z-choice");
    const input = el("input");
    input.type = kind === "radio" ? "radio" : "checkbox";
    input.name = name;
    input.value = option.value ?? "";
    if (kind === "radio") input.checked = block.initial_option?.value === option.value;
    else input.checked = Boolean(option.initial_selected);
    if (kind === "checkbox" && block.style) label.classList.add("z-switch");
    label.append(input, el("span", "", option.text));
    group.append(label);
  });
  return formNote(group);
}

function picker(block, kind) {
  const input = el("input", "z-picker");
  input.type = kind;
  input.value = (kind === "date" ? block.initial_date : block.initial_time) || "";
  input.setAttribute("aria-label", kind === "date" ? "Date" : "Time");
  return formNote(input);
}

function textInput(block) {
  const wrap = el("div", "z-input");
  if (block.text) wrap.append(el("label", "z-select-label", block.text));
  const input = el(block.multiline ? "textarea" : "input", "z-input-box");
  input.value = block.value || "";
  if (block.placeholder) input.placeholder = block.placeholder;
  if (Number.isInteger(block.max_length)) input.maxLength = block.max_length;
  if (Number.isInteger(block.min_length)) input.minLength = block.min_length;
  input.setAttribute("aria-label", block.text || block.placeholder || "Text");
  wrap.append(input);
  return formNote(wrap);
}

function video(block) {
  const box = el("div", "z-video");
  const thumb = safeImage(block.thumbnail_url);
  if (thumb) {
    const pic = el("img", "z-video-thumb");
    pic.src = thumb;
    pic.alt = textOf(block.title);
    box.append(pic);
  }
  const info = el("div", "z-attachment-info");
  info.append(link(block.title_url || block.video_url, textOf(block.title) || "Video", "z-attachment-title"));
  const by = [block.author_name, block.provider_name].filter(Boolean).join(" · ");
  if (by) info.append(el("div", "z-attachment-meta", by));
  box.append(info);
  return box;
}

function section(block, act, ctx, md) {
  const box = el("div", "z-section");
  const c = color(block.sidebar_color);
  if (c) {
    box.classList.add("z-section-bar");
    box.style.borderLeftColor = c;
  }
  if (block.layout === "horizontal") box.classList.add("z-section-horizontal");
  const inner = el("div", "z-section-body");
  (Array.isArray(block.sections) ? block.sections : []).forEach((child) => inner.append(element(child, act, ctx, md)));
  box.append(inner);
  if (block.footer || block.ts || block.footer_icon) {
    const foot = el("div", "z-footer");
    const icon = safeImage(block.footer_icon);
    if (icon) {
      const pic = el("img", "z-footer-icon");
      pic.src = icon;
      pic.alt = "";
      foot.append(pic);
    }
    if (block.footer) foot.append(md ? markdown(block.footer, "z-footer-text") : el("span", "z-footer-text", block.footer));
    const when = formatTs(block.ts);
    if (when) foot.append(el("span", "z-footer-ts", when));
    box.append(foot);
  }
  return box;
}

function pages(block, act, ctx, md) {
  const list = Array.isArray(block.pages) ? block.pages : [];
  const box = el("div", "z-pages");
  if (!list.length) return box;
  let index = Math.max(0, list.findIndex((p) => p.pageNo === block.cur_page));
  const body = el("div", "z-page-body");
  const counter = el("span", "z-images-count");
  const show = () => {
    body.replaceChildren();
    (Array.isArray(list[index].body) ? list[index].body : []).forEach((child) => body.append(element(child, act, ctx, md)));
    counter.textContent = `Page ${index + 1} of ${list.length}`;
  };
  box.append(body);
  if (list.length > 1) {
    const nav = el("div", "z-images-nav");
    const prev = el("button", "z-page-button", "‹");
    const next = el("button", "z-page-button", "›");
    prev.type = next.type = "button";
    prev.setAttribute("aria-label", "Previous page");
    next.setAttribute("aria-label", "Next page");
    prev.addEventListener("click", () => { index = Math.max(0, index - 1); show(); });
    next.addEventListener("click", () => { index = Math.min(list.length - 1, index + 1); show(); });
    nav.append(prev, counter, next);
    box.append(nav);
  }
  show();
  return box;
}

export function element(block, act, ctx, md) {
  if (!block || typeof block !== "object") return el("div", "z-unknown", "(not an element)");
  switch (block.type) {
    case "message": return message(block, act, md);
    case "fields": return fields(block, act, md);
    case "actions": return actions(block, act);
    case "select": return select(block, act, ctx);
    case "attachments": return attachment(block);
    case "file": return file(block);
    case "divider": return divider(block);
    case "progress_bar": return progress(block);
    case "alert": return alertBox(block, md);
    case "images": return images(block);
    case "radio_buttons": return choices(block, "radio");
    case "checkboxes": return choices(block, "checkbox");
    case "datepicker": return picker(block, "date");
    case "timepicker": return picker(block, "time");
    case "plain_text_input": return textInput(block);
    case "video": return video(block);
    case "section": return section(block, act, ctx, md);
    case "page": return pages(block, act, ctx, md);
    default: return el("div", "z-unknown", `(element type ${JSON.stringify(block.type)} is not drawn by Zoom)`);
  }
}

// The whole card: head (with style and sub_head), then the body's elements in order.
export function card(content, act, ctx, md) {
  const root = el("div", "z-card");
  const head = content && content.head;
  if (head && typeof head === "object") {
    const h = richText(head.text, md, "z-head", head.style);
    root.append(h);
    if (head.sub_head) root.append(richText(head.sub_head.text, md, "z-subhead", head.sub_head.style));
  }
  const body = content && Array.isArray(content.body) ? content.body : [];
  body.forEach((block) => root.append(element(block, act, ctx, md)));
  return root;
}
