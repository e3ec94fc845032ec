// Bilinear resizing exactly as Pillow does it (libImaging/Resample.c, 8 bits a channel), so that the browser feeds
// the model the pixels `pilah.images.load_rgb` gives Python: the same support (widened when shrinking), the same
// 22-bit fixed-point weights and rounding, and the same order of the two passes.

const PRECISION_BITS = 32 - 8 - 2;
const HALF = 1 << (PRECISION_BITS - 1);
const ONE = 1 << PRECISION_BITS;

function bilinear(x) {
  x = Math.abs(x);
  return x < 1 ? 1 - x : 0;
}

// Per output pixel: the first input pixel, how many follow, and their fixed-point weights.
function coefficients(inSize, outSize) {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = filterscale; // the bilinear filter's support is 1
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * ksize);
  const row = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const count = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let total = 0;
    for (let x = 0; x < count; x++) {
      row[x] = bilinear((x + xmin - center + 0.5) / filterscale);
      total += row[x];
    }
    for (let x = 0; x < count; x++) {
      const w = total !== 0 ? row[x] / total : row[x];
      weights[xx * ksize + x] = w < 0 ? Math.trunc(-0.5 + w * ONE) : Math.trunc(0.5 + w * ONE);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = count;
  }
  return { ksize, bounds, weights };
}

function clip8(sum) {
  const value = sum >> PRECISION_BITS;
  return value < 0 ? 0 : value > 255 ? 255 : value;
}

// One pass along x (`horizontal`) or y of an RGB image stored as 3 bytes a pixel.
function pass(src, width, height, outSize, horizontal) {
  const { ksize, bounds, weights } = coefficients(horizontal ? width : height, outSize);
  const outWidth = horizontal ? outSize : width;
  const outHeight = horizontal ? height : outSize;
  const out = new Uint8Array(outWidth * outHeight * 3);
  for (let y = 0; y < outHeight; y++) {
    for (let x = 0; x < outWidth; x++) {
      const i = horizontal ? x : y;
      const first = bounds[i * 2];
      const count = bounds[i * 2 + 1];
      let r = HALF;
      let g = HALF;
      let b = HALF;
      for (let k = 0; k < count; k++) {
        const w = weights[i * ksize + k];
        const at = horizontal ? (y * width + first + k) * 3 : ((first + k) * width + x) * 3;
        r += src[at] * w;
        g += src[at + 1] * w;
        b += src[at + 2] * w;
      }
      const to = (y * outWidth + x) * 3;
      out[to] = clip8(r);
      out[to + 1] = clip8(g);
      out[to + 2] = clip8(b);
    }
  }
  return out;
}

// RGB bytes (3 a pixel) of `width` x `height` resized to `size` x `size`, as Pillow's
// `image.resize((size, size), Image.Resampling.BILINEAR)`.
export function resizeBilinear(rgb, width, height, size) {
  const needHorizontal = width !== size;
  const needVertical = height !== size;
  // Pillow runs the vertical pass first when the height shrinks more than twice as much as the width.
  const horizontalFirst = !(height - size > 0 && height - size > (width - size) * 2);
  let pixels = rgb;
  let w = width;
  let h = height;
  const horizontal = () => {
    if (needHorizontal) {
      pixels = pass(pixels, w, h, size, true);
      w = size;
    }
  };
  const vertical = () => {
    if (needVertical) {
      pixels = pass(pixels, w, h, size, false);
      h = size;
    }
  };
  if (horizontalFirst) {
    horizontal();
    vertical();
  } else {
    vertical();
    horizontal();
  }
  return pixels === rgb ? rgb.slice() : pixels;
}
