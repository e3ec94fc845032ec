// The model in the browser: ONNX Runtime Web (WebAssembly) runs the bundled int8 model, and this module applies the
// model card around it exactly as `pilah.inference.predictor.CalibratedRuntime` does in Python: the mirrored second
// view, temperature scaling, the k-nearest-neighbour novelty of `inference.open_set` and the grades of
// `inference.calibration.grade_answers`. `selfCheck` compares it with the card's reference answers before any
// answer is shown, as `inference.selfcheck` does.

import * as ort from "../ort/ort.wasm.bundle.min.mjs";
import { loadPhoto, modelInput } from "./pixels.js";

const EPSILON = 1e-12;

// The bytes of a site file; the build gzips the large ones (model, runtime, bank), and a host that sent them with
// `Content-Encoding: gzip` has already unpacked them.
export async function fetchBytes(path) {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (bytes[0] !== 0x1f || bytes[1] !== 0x8b) return bytes;
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function float16(bits) {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

// Rows scaled to length 1, in float32 as numpy's `unit_rows`.
function unitRows(values, rows, dims) {
  const out = new Float32Array(rows * dims);
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let d = 0; d < dims; d++) sum += values[r * dims + d] ** 2;
    const norm = Math.fround(Math.max(Math.sqrt(sum), 1e-12));
    for (let d = 0; d < dims; d++) out[r * dims + d] = Math.fround(values[r * dims + d] / norm);
  }
  return out;
}

async function loadBank(openSet) {
  const bytes = await fetchBytes(openSet.bank);
  const halves = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
  if (halves.length !== openSet.rows * openSet.dims) throw new Error("the open-set bank has the wrong size");
  const values = Float32Array.from(halves, float16);
  return unitRows(values, openSet.rows, openSet.dims);
}

function temperatureScaled(probs, temperature) {
  const logits = probs.map((p) => Math.log(Math.min(Math.max(p, EPSILON), 1)) / temperature);
  const top = Math.max(...logits);
  const scaled = logits.map((l) => Math.exp(l - top));
  const total = scaled.reduce((a, b) => a + b, 0);
  return scaled.map((s) => s / total);
}

// One minus the cosine similarity to the k-th nearest photo of the bank.
function novelty(features, bank, openSet) {
  const unit = unitRows(features, 1, openSet.dims);
  const similarity = new Float32Array(openSet.rows);
  for (let r = 0; r < openSet.rows; r++) {
    let dot = 0;
    const base = r * openSet.dims;
    for (let d = 0; d < openSet.dims; d++) dot += unit[d] * bank[base + d];
    similarity[r] = dot;
  }
  similarity.sort();
  return 1 - similarity[openSet.rows - openSet.k];
}

export function grade(first, second, noveltyValue, card) {
  const open = card.open_set;
  const measured = noveltyValue ?? 0;
  const typical = !open || measured <= open.typical_up_to;
  const sure = first >= card.uncertain_below;
  const likely = !sure && first - second >= card.likely_margin;
  if (open && measured > open.threshold) return "unfamiliar";
  if (sure && typical) return "sure";
  if (likely && typical) return "likely";
  if (sure || likely || first + second >= card.two_from) return "two";
  return "none";
}

export class Engine {
  static async load(site, { threads } = {}) {
    ort.env.wasm.wasmBinary = await fetchBytes(site.runtime.wasm);
    ort.env.wasm.numThreads = threads ?? (self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1);
    const [model, bank] = await Promise.all([
      fetchBytes(site.model.file),
      site.card.open_set ? loadBank(site.card.open_set) : null,
    ]);
    const session = await ort.InferenceSession.create(model, {
      executionProviders: ["wasm"],
      graphOptimizationLevel: "all",
    });
    return new Engine(site, session, bank, ort.env.wasm.numThreads);
  }

  constructor(site, session, bank, threads) {
    this.site = site;
    this.card = site.card;
    this.session = session;
    this.bank = bank;
    this.threads = threads;
  }

  get runtime() {
    const threads = this.threads > 1 ? `${this.threads} threads` : "1 thread";
    return `onnxruntime-web ${this.site.runtime.version}, WebAssembly, ${threads}`;
  }

  // Calibrated probabilities and novelty of `size` x `size` RGB photos, averaged over each and its mirror.
  async answers(photos) {
    const size = this.site.model.image_size;
    const views = this.card.flip_tta ? 2 : 1;
    const count = photos.length;
    const input = new ort.Tensor("float32", modelInput(photos, size, this.card.flip_tta), [count * views, size, size, 3]);
    const names = [this.session.outputNames[0], ...(this.bank ? [this.site.model.features_output] : [])];
    const outputs = await this.session.run({ [this.session.inputNames[0]]: input }, names);
    const probs = outputs[names[0]].data;
    const features = this.bank ? outputs[names[1]].data : null;
    const classes = this.card.classes.length;
    const dims = this.bank ? this.card.open_set.dims : 0;
    const mean = (data, width, n) =>
      Array.from({ length: width }, (_, j) => {
        const plain = data[n * width + j];
        return views === 2 ? (plain + data[(count + n) * width + j]) / 2 : plain;
      });
    const results = [];
    for (let n = 0; n < count; n++) {
      const probabilities = temperatureScaled(mean(probs, classes, n), this.card.temperature);
      const unlike = this.bank ? novelty(Float32Array.from(mean(features, dims, n)), this.bank, this.card.open_set) : null;
      results.push({ probabilities, novelty: unlike });
    }
    for (const output of Object.values(outputs)) output.dispose?.();
    return results;
  }

  // A photo file to its answer: the label, the grade, the top classes; refusals throw `PhotoError`.
  async classify(blob) {
    const started = performance.now();
    const rgb = await loadPhoto(blob, this.site.model.image_size, this.site.limits);
    const [{ probabilities, novelty: unlike }] = await this.answers([rgb]);
    const order = probabilities.map((p, i) => [p, i]).sort((a, b) => b[0] - a[0]);
    const classes = this.card.classes;
    return {
      label: classes[order[0][1]],
      confidence: order[0][0],
      grade: grade(order[0][0], order[1][0], unlike, this.card),
      novelty: unlike,
      top: order.slice(0, 5).map(([p, i]) => ({ label: classes[i], probability: p })),
      probabilities: Object.fromEntries(classes.map((c, i) => [c, probabilities[i]])),
      rgb,
      milliseconds: performance.now() - started,
    };
  }

  // The card's reference photos through this browser's runtime: the same top class on each, no probability
  // further than the card's tolerance, no novelty further than the self-check's.
  async selfCheck() {
    const check = this.card.self_check;
    const size = this.site.model.image_size;
    const answers = [];
    for (const photo of check.photos) {  // one at a time: a batch of 24 views would grow the tab's memory for good
      const blob = new Blob([await fetchBytes(`examples/${photo.name}`)]);
      answers.push(...(await this.answers([await loadPhoto(blob, size, this.site.limits)])));
    }
    let difference = 0;
    let noveltyDifference = 0;
    const changed = [];
    check.photos.forEach((photo, n) => {
      const got = answers[n].probabilities;
      got.forEach((p, i) => (difference = Math.max(difference, Math.abs(p - photo.probabilities[i]))));
      const top = (values) => values.indexOf(Math.max(...values));
      if (top(got) !== top(photo.probabilities)) changed.push(photo.name);
      if (this.bank) noveltyDifference = Math.max(noveltyDifference, Math.abs(answers[n].novelty - photo.novelty));
    });
    const passed = changed.length === 0 && difference <= check.tolerance && noveltyDifference <= check.novelty_tolerance;
    return { passed, photos: answers.length, difference, noveltyDifference, changed };
  }
}
