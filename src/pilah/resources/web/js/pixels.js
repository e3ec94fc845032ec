// A photo file to the model's input, as `pilah.images.load_rgb` makes it in Python: EXIF orientation applied,
// alpha on white, no colour-profile conversion, Pillow's bilinear resize to size x size. Every refusal is a
// `PhotoError` whose code is one of `pilah.images`' (`texts.errors` words it for people).

import { resizeBilinear } from "./resize.js";

export class PhotoError extends Error {
  constructor(code, message) {
    super(message || code);
    this.code = code;
  }
}

const HEIF_BRANDS = ["heic", "heix", "hevc", "hevx", "heim", "heis", "mif1", "msf1", "avif", "avis"];

function ascii(bytes, start, end) {
  return String.fromCharCode(...bytes.subarray(start, end));
}

// The format and, where the header says it, the size, read from the first bytes: a huge photo is refused
// before the browser decodes it (decoding 400 megapixels takes gigabytes).
export function sniff(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const has = (n) => bytes.length >= n;
  if (has(24) && ascii(bytes, 1, 4) === "PNG") {
    return { format: "png", width: view.getUint32(16), height: view.getUint32(20) };
  }
  if (has(10) && ascii(bytes, 0, 3) === "GIF") {
    return { format: "gif", width: view.getUint16(6, true), height: view.getUint16(8, true) };
  }
  if (has(26) && ascii(bytes, 0, 2) === "BM") {
    return { format: "bmp", width: Math.abs(view.getInt32(18, true)), height: Math.abs(view.getInt32(22, true)) };
  }
  if (has(30) && ascii(bytes, 0, 4) === "RIFF" && ascii(bytes, 8, 12) === "WEBP") {
    const chunk = ascii(bytes, 12, 16);
    if (chunk === "VP8X") {
      const w = 1 + (bytes[24] | (bytes[25] << 8) | (bytes[26] << 16));
      const h = 1 + (bytes[27] | (bytes[28] << 8) | (bytes[29] << 16));
      return { format: "webp", width: w, height: h };
    }
    if (chunk === "VP8L") {
      const bits = view.getUint32(21, true);
      return { format: "webp", width: (bits & 0x3fff) + 1, height: ((bits >> 14) & 0x3fff) + 1 };
    }
    if (chunk === "VP8 ") {
      return { format: "webp", width: view.getUint16(26, true) & 0x3fff, height: view.getUint16(28, true) & 0x3fff };
    }
    return { format: "webp" };
  }
  if (has(12) && ascii(bytes, 4, 8) === "ftyp" && HEIF_BRANDS.includes(ascii(bytes, 8, 12))) {
    return { format: "heif" };
  }
  if (has(3) && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) {
    return { format: "jpeg", ...jpegSize(bytes, view) };
  }
  if (has(4) && (ascii(bytes, 0, 4) === "II*\0" || ascii(bytes, 0, 4) === "MM\0*")) {
    return { format: "tiff" };
  }
  return { format: null };
}

// The size in a JPEG's first start-of-frame marker (SOF0-SOF15 but DHT, JPG and DAC).
function jpegSize(bytes, view) {
  let at = 2;
  while (at + 9 < bytes.length) {
    if (bytes[at] !== 0xff) return {};
    const marker = bytes[at + 1];
    if (marker === 0xff) {
      at += 1;
      continue;
    }
    const length = view.getUint16(at + 2);
    if (marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker)) {
      return { height: view.getUint16(at + 5), width: view.getUint16(at + 7) };
    }
    at += 2 + length;
  }
  return {};
}

function checkSize(width, height, limits) {
  if (width * height > limits.max_pixels) throw new PhotoError("too_large", `${width}x${height} pixels`);
}

function checkShape(width, height, limits) {
  if (Math.min(width, height) < limits.min_side) throw new PhotoError("too_small", `${width}x${height} pixels`);
  if (Math.max(width, height) / Math.min(width, height) > limits.max_aspect_ratio) {
    throw new PhotoError("bad_aspect_ratio", `${width}x${height} pixels`);
  }
}

// The decoded photo's RGBA pixels, with alpha composited on white (as Pillow's `alpha_composite` on white).
async function decode(blob, found) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob, {
      imageOrientation: "from-image",
      colorSpaceConversion: "none",
      premultiplyAlpha: "none",
    });
  } catch {
    if (found.format === "heif") throw new PhotoError("unsupported", "HEIC/HEIF");
    throw new PhotoError(found.format ? "corrupt" : "not_an_image");
  }
  const { width, height } = bitmap;
  const canvas = new OffscreenCanvas(width, height);
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.fillStyle = "#ffffff";
  context.fillRect(0, 0, width, height);
  context.drawImage(bitmap, 0, 0);
  bitmap.close();
  return { width, height, rgba: context.getImageData(0, 0, width, height).data };
}

function rgbOf(rgba) {
  const rgb = new Uint8Array((rgba.length / 4) * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
    rgb[j] = rgba[i];
    rgb[j + 1] = rgba[i + 1];
    rgb[j + 2] = rgba[i + 2];
  }
  return rgb;
}

// A file (or blob) to `size` x `size` RGB bytes, the model's view of it; refusals as `PhotoError`.
export async function loadPhoto(blob, size, limits) {
  if (blob.size === 0) throw new PhotoError("empty");
  if (blob.size > limits.max_upload_mb * 1024 * 1024) throw new PhotoError("too_large_upload");
  const head = new Uint8Array(await blob.slice(0, 65536).arrayBuffer());
  const found = sniff(head);
  if (found.width && found.height) checkSize(found.width, found.height, limits);
  const { width, height, rgba } = await decode(blob, found);
  checkSize(width, height, limits);
  checkShape(width, height, limits);
  return resizeBilinear(rgbOf(rgba), width, height, size);
}

// The model's input for RGB photos of `size` x `size`: float32 pixels 0-255 (the model scales them itself), each
// photo followed by its left-right mirror when `mirrored` (the card's flip TTA).
export function modelInput(photos, size, mirrored) {
  const views = mirrored ? 2 : 1;
  const data = new Float32Array(photos.length * views * size * size * 3);
  const stride = size * size * 3;
  photos.forEach((rgb, n) => {
    const plain = n * stride;
    for (let i = 0; i < stride; i++) data[plain + i] = rgb[i];
    if (!mirrored) return;
    const mirror = (photos.length + n) * stride;
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const from = (y * size + x) * 3;
        const to = mirror + (y * size + (size - 1 - x)) * 3;
        data[to] = rgb[from];
        data[to + 1] = rgb[from + 1];
        data[to + 2] = rgb[from + 2];
      }
    }
  });
  return data;
}
