// Pilah in the browser: pick or take a photo, get the verdict card (class, waste stream, how sure), all on this
// device. The texts, the guidance packs and the model card come from site.json, which `pilah web build` writes
// from the same files the Streamlit app and the API use.

import { Engine } from "./engine.js";
import { PhotoError } from "./pixels.js";
import { addEntry, clearHistory, readHistory, statistics, updateEntry } from "./history.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const language = params.get("lang") === "en" ? "en" : "id";
const REGION_KEY = "pilah.region";
const CHECK_KEY = "pilah.selfcheck.v1";
const THUMBNAIL = 64;

let site;
let t;
let engine;
let region;
let readyText; // what the status line says between answers
let csvUrl; // the history's CSV download, replaced (and freed) at each redraw

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "class") node.className = value;
    else if (key === "style") Object.assign(node.style, value); // the CSSOM, which the page's CSP allows
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function format(template, values) {
  return template.replace(/\{(\w+)\}/g, (all, key) => (key in values ? values[key] : all));
}

function percent(value) {
  const text = (value * 100).toFixed(1);
  return language === "id" ? `${text.replace(".", ",")} %` : `${text}%`;
}

function status(text, problem = false) {
  $("status").textContent = text;
  $("status").classList.toggle("problem", problem);
}

function advice(label) {
  return site.regions[region].classes[label][language];
}

function badge(stream) {
  return element("span", { class: `badge ${stream.badge}` }, `${stream.icon} ${stream.stream_name}`);
}

function streamLine(label) {
  const a = advice(label);
  return element("p", {}, badge(a), ` ${a.where[0]}`);
}

function className(label) {
  return t.classes[label] || label;
}

function pairTip(a, b) {
  return t.pair_tips[[a, b].sort().join("|")] || t.pair_tips.other;
}

function lookalikeItems(items) {
  const [first, ...rest] = items.split(", ");
  return [first, ...rest.map((item) => item[0].toLowerCase() + item.slice(1))].join(", ");
}

// The answer in the history's words, as `pilah.app.history.answer_text`.
function answerText(e) {
  if (e.lookalike) return e.lookalike;
  if (e.grade === "sure") return className(e.label);
  if (e.grade === "likely") return format(t.probably, { name: className(e.label) });
  if (e.grade === "two") return format(t.between, { a: className(e.label), b: className(e.second) });
  return e.grade === "unfamiliar" ? t.unfamiliar_title : t.none_title;
}

// The verdict, as the Streamlit app's `render_verdict`: what it is, its stream here, how sure Pilah is.
function verdict(result) {
  const name = className(result.label);
  const confidence = percent(result.confidence);
  if (result.grade === "sure" || result.grade === "likely") {
    const headline = result.grade === "sure" ? name : format(t.probably, { name });
    const line = result.grade === "sure" ? t.grade_sure : t.grade_likely;
    return [
      element("h3", {}, `${advice(result.label).icon} ${headline}`),
      streamLine(result.label),
      element("p", { class: `grade ${result.grade}` }, format(line, { confidence })),
    ];
  }
  if (result.grade === "two") {
    const [first, second] = result.top;
    const list = element(
      "ul",
      {},
      ...[first, second].map((c) =>
        element("li", {}, element("strong", {}, className(c.label)), ` (${percent(c.probability)}) `, streamLine(c.label)),
      ),
    );
    return [
      element("h3", {}, format(t.between, { a: className(first.label), b: className(second.label) })),
      list,
      element("p", { class: "grade two" }, format(t.grade_two, { tip: pairTip(first.label, second.label) })),
    ];
  }
  const unfamiliar = result.grade === "unfamiliar";
  const unsure = site.regions[region].unsure[language];
  const body = unfamiliar ? t.grade_unfamiliar : format(t.grade_none, { confidence, name });
  return [
    element("h3", {}, unfamiliar ? t.unfamiliar_title : t.none_title),
    element("p", {}, element("strong", {}, `${t.unsure_label}: `), badge(unsure), ` ${unsure.line}`),
    element("p", { class: `grade ${result.grade}` }, body, element("br"), t.retake_tips),
  ];
}

function sourceLine(a) {
  let title = a.source_title;
  if (a.source_language && a.source_language !== language) {
    title += ` (${t.source_written_in[a.source_language] || a.source_language})`;
  }
  const [before, after] = t.advice_source.split("[{title}]({url})");
  const link = element("a", { href: a.source_url, rel: "noopener" }, title);
  return element("p", {}, element("em", {}, before, link, after || ""));
}

function steps(label) {
  const a = advice(label);
  const list = (items) => element("ul", {}, ...items.map((line) => element("li", {}, line)));
  const parts = [element("p", {}, a.summary), element("strong", {}, t.prepare_label), list(a.prepare)];
  parts.push(element("strong", {}, t.where_label), list(a.where));
  if (a.dont.length) parts.push(element("strong", {}, t.dont_label), list(a.dont));
  if (a.bin_colour) parts.push(element("p", {}, element("strong", {}, `${t.bin_colour_label}: `), t.bin_colours[a.bin_colour]));
  if (a.language !== language) parts.push(element("p", {}, format(t.advice_language, { language: site.texts[a.language].language_name })));
  parts.push(sourceLine(a));
  return parts;
}

function details(result, thumbnail, lookalike) {
  const label = lookalike ? site.regions[region].class_of_stream[lookalike] : result.label;
  const bars = result.top.map((c) =>
    element(
      "div",
      { class: "bar" },
      `${className(c.label)} · ${percent(c.probability)}`,
      element("div", { style: { width: `${Math.max(1, c.probability * 100).toFixed(1)}%` } }),
    ),
  );
  return element(
    "details",
    {},
    element("summary", {}, t.details),
    element("img", { src: thumbnail, alt: t.model_saw, width: "112", height: "112" }),
    element("p", {}, element("small", {}, t.model_saw)),
    ...((result.grade === "sure" || result.grade === "likely") && label ? steps(label) : []),
    element("p", {}, element("strong", {}, t.chart_title)),
    ...bars,
  );
}

// The card for one photo; a tap on a look-alike ("Used tissue? -> Residual") switches it to that stream.
function card(result, entry, thumbnail) {
  const node = element("article", {
    class: "card verdict",
    "data-grade": result.grade,
    "data-label": result.label,
    "data-confidence": result.confidence,
    "data-second": result.top[1].probability,
    "data-novelty": result.novelty ?? "",
  });
  const draw = () => {
    node.replaceChildren(element("p", { class: "for" }, format(t.result_for, { name: entry.source })));
    if (entry.lookalikeStream) {
      const group = advice(result.label).exceptions.find((g) => g.stream === entry.lookalikeStream);
      node.append(element("h3", {}, `${group.icon} ${group.stream_name}`));
      node.append(element("p", {}, format(t.lookalike_chosen, { items: lookalikeItems(group.items), stream: group.stream_name })));
      const label = site.regions[region].class_of_stream[group.stream];
      if (label) node.append(streamLine(label));
      const undo = () => {
        entry.lookalikeStream = null;
        updateEntry(entry.id, { lookalike: "" });
        drawHistory();
        draw();
      };
      node.append(element("button", { type: "button", onclick: undo }, format(t.lookalike_undo, { name: className(result.label) })));
    } else {
      node.append(...verdict(result));
      if (result.grade === "sure" || result.grade === "likely") {
        for (const group of advice(result.label).exceptions) {
          const choose = () => {
            entry.lookalikeStream = group.stream;
            updateEntry(entry.id, { lookalike: `${lookalikeItems(group.items)} → ${group.stream_name}` });
            drawHistory();
            draw();
          };
          const text = `${lookalikeItems(group.items)}? → ${group.icon} ${group.stream_name}`;
          node.append(element("button", { type: "button", class: "lookalike", onclick: choose }, text));
        }
      }
    }
    node.append(details(result, thumbnail, entry.lookalikeStream));
  };
  draw();
  return node;
}

function errorCard(name, error) {
  const code = error instanceof PhotoError ? error.code : "other";
  const message = format(t.errors[code] || t.errors.other, { limit: site.limits.max_upload_mb });
  return element(
    "article",
    { class: "card error", "data-error": code, role: "alert" },
    element("p", {}, element("strong", {}, format(t.error_title, { name }))),
    element("p", {}, message),
  );
}

function thumbnailOf(rgb, size) {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = size;
  const image = new ImageData(size, size);
  for (let i = 0, j = 0; i < rgb.length; i += 3, j += 4) {
    image.data.set([rgb[i], rgb[i + 1], rgb[i + 2], 255], j);
  }
  canvas.getContext("2d").putImageData(image, 0, 0);
  const small = document.createElement("canvas");
  small.width = small.height = THUMBNAIL;
  small.getContext("2d").drawImage(canvas, 0, 0, THUMBNAIL, THUMBNAIL);
  return { full: canvas.toDataURL("image/jpeg", 0.85), small: small.toDataURL("image/jpeg", 0.7) };
}

function shortName(name) {
  return name.length > 60 ? `${name.slice(0, 57)}…` : name;
}

async function classifyFiles(files) {
  const results = $("results");
  results.replaceChildren();
  status(t.classifying);
  for (const file of files) {
    const name = shortName(file.name || t.camera_label);
    try {
      const result = await engine.classify(file);
      const pictures = thumbnailOf(result.rgb, site.model.image_size);
      const entry = {
        id: crypto.randomUUID(),
        time: new Date().toISOString(),
        source: name,
        label: result.label,
        second: result.top[1].label,
        grade: result.grade,
        confidence: result.confidence,
        lookalike: "",
        thumbnail: pictures.small,
      };
      addEntry(entry);
      results.append(card(result, entry, pictures.full));
    } catch (error) {
      if (!(error instanceof PhotoError)) console.error(error);
      results.append(errorCard(name, error));
    }
  }
  status(readyText);
  drawHistory();
  results.firstElementChild?.scrollIntoView({ block: "nearest" });
}

function csv(entries) {
  const quote = (value) => `"${String(value).replaceAll('"', '""')}"`;
  const header = [t.csv.time, t.csv.file, t.csv.answer, t.csv.grade, t.csv.class_code, t.csv.confidence];
  const rows = entries.map((e) => [e.time, e.source, answerText(e), t.grade_names[e.grade], e.label, e.confidence.toFixed(4)]);
  return [header, ...rows].map((row) => row.map(quote).join(",")).join("\r\n");
}

function drawHistory() {
  const entries = readHistory();
  const body = $("history-body");
  if (!entries.length) {
    body.replaceChildren(element("p", {}, t.history_empty));
    return;
  }
  const stats = statistics(entries);
  const summary = element(
    "p",
    {},
    `${t.stat_total}: ${stats.total} · ${t.stat_avg_confidence}: ${percent(stats.average)} · ${t.stat_unsure}: ${stats.unsure}`,
  );
  const perClass = stats.perClass.map(([label, n]) => `${className(label)}: ${n}`).join(", ");
  const items = [...entries].reverse().map((e) =>
    element(
      "li",
      { "data-label": e.label, "data-grade": e.grade },
      element("img", { src: e.thumbnail, alt: "" }),
      `${new Date(e.time).toLocaleTimeString(language === "id" ? "id-ID" : "en-GB")} · `,
      element("strong", {}, answerText(e)),
      ` · ${percent(e.confidence)}`,
    ),
  );
  if (csvUrl) URL.revokeObjectURL(csvUrl);
  csvUrl = URL.createObjectURL(new Blob([csv(entries)], { type: "text/csv" }));
  const download = element("a", {
    class: "button",
    download: language === "id" ? "pilah-riwayat.csv" : "pilah-history.csv",
    href: csvUrl,
  }, t.download_csv);
  const clear = element("button", { type: "button", id: "clear-history", onclick: () => { clearHistory(); drawHistory(); } }, t.clear_history);
  body.replaceChildren(
    summary,
    perClass ? element("p", {}, `${t.stat_per_class}: ${perClass}`) : null,
    element("ul", {}, ...items),
    element("div", { class: "row" }, download, clear),
  );
}

function drawStatic() {
  document.documentElement.lang = language;
  document.title = t.title;
  $("title").textContent = t.title;
  $("region-label").textContent = t.region_label;
  $("pick-text").textContent = t.upload_button;
  $("camera-text").textContent = t.camera_label;
  $("example-label").textContent = t.example_label;
  $("example-button").textContent = t.example_button;
  $("history-title").textContent = t.history_title;
  const other = language === "id" ? "en" : "id";
  $("language").textContent = site.texts[other].language_name;
  $("language").href = `?lang=${other}`;
  $("language").lang = other;
  const regions = $("region");
  regions.replaceChildren(
    ...Object.entries(site.regions).map(([key, r]) => element("option", { value: key }, r.name[language])),
  );
  regions.value = region;
  regions.onchange = () => {
    region = regions.value;
    localStorage.setItem(REGION_KEY, region);
    $("results").replaceChildren();
  };
  $("example").replaceChildren(
    ...site.examples.map((file) => {
      const label = file.replace(/^.*\//, "").replace(/\.jpg$/, "");
      return element("option", { value: file }, className(label));
    }),
  );
  $("about").replaceChildren(
    element("p", {}, format(t.web.about, { version: site.pilah_version })),
    element("p", {}, `${t.model_data}: ${t.model_data_source}`),
  );
}

function enableInputs() {
  for (const id of ["pick", "camera", "example-button"]) $(id).disabled = false;
  for (const id of ["pick", "camera"]) {
    $(id).addEventListener("change", async (event) => {
      const files = [...event.target.files];
      event.target.value = "";
      if (files.length) await classifyFiles(files);
    });
  }
  $("example-button").addEventListener("click", async () => {
    const file = $("example").value;
    const blob = await (await fetch(file)).blob();
    await classifyFiles([new File([blob], file.replace(/^.*\//, ""), { type: "image/jpeg" })]);
  });
}

// Offline after the first visit: the service worker caches the whole site. The model is fetched once it
// controls the page, so that the first visit downloads each file once (through the worker's cache).
async function offlineReady() {
  if (!("serviceWorker" in navigator) || !window.isSecureContext) return false;
  try {
    await navigator.serviceWorker.register("sw.js");
    await navigator.serviceWorker.ready;
    if (!navigator.serviceWorker.controller) {
      await new Promise((resolve) => navigator.serviceWorker.addEventListener("controllerchange", resolve, { once: true }));
    }
    return true;
  } catch (error) {
    console.warn("no service worker:", error);
    return false;
  }
}

// The self-check of an earlier visit, when nothing it depends on has changed since: the site's code, runtime, model
// and examples (`check_id`), the model card, the browser (its name and version) and the number of threads. A revisit
// is then ready in about a second instead of after running every reference photo again; a check that failed is
// never kept, so a page that refused keeps checking at every visit.
function keptCheck(key) {
  try {
    const kept = JSON.parse(localStorage.getItem(CHECK_KEY));
    return kept?.key === key && kept.check?.passed === true ? kept.check : null;
  } catch {
    return null; // not JSON: as if nothing were kept
  }
}

async function checkedOnce(engine) {
  const key = JSON.stringify([site.check_id, site.card, navigator.userAgent, engine.threads]);
  const kept = keptCheck(key);
  if (kept) return { ...kept, remembered: true };
  const check = await engine.selfCheck();
  localStorage.removeItem(CHECK_KEY);
  try {
    if (check.passed) localStorage.setItem(CHECK_KEY, JSON.stringify({ key, check }));
  } catch {
    // storage full (the history fills it): this visit's answers stand, the next visit checks again
  }
  return { ...check, remembered: false };
}

async function main() {
  site = await (await fetch("site.json")).json();
  t = site.texts[language];
  const saved = localStorage.getItem(REGION_KEY);
  region = saved && site.regions[saved] ? saved : site.default_region;
  drawStatic();
  drawHistory();
  status(t.web.loading);
  const offline = await offlineReady();
  window.pilah = { site, offline, ready: false };
  try {
    const threads = params.has("threads") ? Number(params.get("threads")) : undefined;
    engine = await Engine.load(site, { threads });
    status(t.web.checking);
    const check = await checkedOnce(engine);
    Object.assign(window.pilah, { engine, check });
    if (!check.passed) {
      const detail = format(t.web.check_detail, { changed: check.changed.length, difference: check.difference.toFixed(3) });
      status(format(t.web.check_failed, { detail }), true);
      return;
    }
  } catch (error) {
    console.error(error);
    status(format(t.web.load_failed, { error: String(error.message || error) }), true);
    return;
  }
  enableInputs();
  window.pilah.ready = true;
  readyText = offline ? t.web.ready_offline : t.web.ready;
  status(readyText);
}

main();
