// Tiny RGBA raster helpers for the detection pictures and the FROC plot:
// an image type, pixels, lines, rectangles, blits, a 5x7 bitmap font for
// numbers, and PNG encoding/decoding through pngjs. No font or canvas
// dependency. Coordinates are integer pixels, (0, 0) top-left; everything
// outside the image is clipped silently (callers draw boxes that may stick
// out of a slice).
import { PNG } from 'pngjs';

/** RGBA colour, each channel 0..255. */
export type Rgba = readonly [number, number, number, number];

export interface RgbaImage {
  width: number;
  height: number;
  /** width * height * 4 bytes, row-major, RGBA. */
  data: Uint8Array;
}

export const COLORS = {
  black: [0, 0, 0, 255] as Rgba,
  white: [255, 255, 255, 255] as Rgba,
  red: [255, 48, 48, 255] as Rgba,
  green: [40, 220, 70, 255] as Rgba,
  blue: [40, 110, 255, 255] as Rgba,
  yellow: [255, 215, 0, 255] as Rgba,
  gray: [128, 128, 128, 255] as Rgba,
  lightGray: [215, 215, 215, 255] as Rgba,
} as const;

export function createImage(width: number, height: number, background: Rgba = COLORS.black): RgbaImage {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new Error(`createImage: width and height must be positive integers, got ${width}x${height}`);
  }
  const data = new Uint8Array(width * height * 4);
  for (let i = 0; i < data.length; i += 4) {
    data[i] = background[0];
    data[i + 1] = background[1];
    data[i + 2] = background[2];
    data[i + 3] = background[3];
  }
  return { width, height, data };
}

export function setPixel(img: RgbaImage, x: number, y: number, c: Rgba): void {
  if (x < 0 || y < 0 || x >= img.width || y >= img.height) return;
  const o = (y * img.width + x) * 4;
  img.data[o] = c[0];
  img.data[o + 1] = c[1];
  img.data[o + 2] = c[2];
  img.data[o + 3] = c[3];
}

/** Alpha-blends colour c over the pixel with opacity alpha in [0, 1]. */
export function blendPixel(img: RgbaImage, x: number, y: number, c: Rgba, alpha: number): void {
  if (x < 0 || y < 0 || x >= img.width || y >= img.height) return;
  const o = (y * img.width + x) * 4;
  for (let k = 0; k < 3; k++) img.data[o + k] = Math.round(img.data[o + k] * (1 - alpha) + c[k] * alpha);
  img.data[o + 3] = 255;
}

export function getPixel(img: RgbaImage, x: number, y: number): [number, number, number, number] {
  if (x < 0 || y < 0 || x >= img.width || y >= img.height) {
    throw new Error(`getPixel: (${x}, ${y}) outside the ${img.width}x${img.height} image`);
  }
  const o = (y * img.width + x) * 4;
  return [img.data[o], img.data[o + 1], img.data[o + 2], img.data[o + 3]];
}

/** Bresenham line between integer end points (inclusive), `thickness` pixels wide (square pen). */
export function drawLine(
  img: RgbaImage,
  x0: number,
  y0: number,
  x1: number,
  y1: number,
  c: Rgba,
  thickness = 1,
): void {
  x0 = Math.round(x0);
  y0 = Math.round(y0);
  x1 = Math.round(x1);
  y1 = Math.round(y1);
  const dx = Math.abs(x1 - x0);
  const dy = -Math.abs(y1 - y0);
  const sx = x0 < x1 ? 1 : -1;
  const sy = y0 < y1 ? 1 : -1;
  const lo = -Math.floor((thickness - 1) / 2);
  const hi = lo + thickness - 1;
  let err = dx + dy;
  for (;;) {
    for (let a = lo; a <= hi; a++) for (let b = lo; b <= hi; b++) setPixel(img, x0 + a, y0 + b, c);
    if (x0 === x1 && y0 === y1) break;
    const e2 = 2 * err;
    if (e2 >= dy) {
      err += dy;
      x0 += sx;
    }
    if (e2 <= dx) {
      err += dx;
      y0 += sy;
    }
  }
}

/** Outline of the rectangle with corners (x0, y0) and (x1, y1), inclusive, `thickness` pixels inwards. */
export function drawRect(img: RgbaImage, x0: number, y0: number, x1: number, y1: number, c: Rgba, thickness = 1): void {
  const xa = Math.round(Math.min(x0, x1));
  const xb = Math.round(Math.max(x0, x1));
  const ya = Math.round(Math.min(y0, y1));
  const yb = Math.round(Math.max(y0, y1));
  for (let t = 0; t < thickness; t++) {
    if (xa + t > xb - t || ya + t > yb - t) break;
    for (let x = xa + t; x <= xb - t; x++) {
      setPixel(img, x, ya + t, c);
      setPixel(img, x, yb - t, c);
    }
    for (let y = ya + t; y <= yb - t; y++) {
      setPixel(img, xa + t, y, c);
      setPixel(img, xb - t, y, c);
    }
  }
}

/** Filled rectangle, corners inclusive; alpha < 1 blends. */
export function fillRect(img: RgbaImage, x0: number, y0: number, x1: number, y1: number, c: Rgba, alpha = 1): void {
  const xa = Math.max(0, Math.round(Math.min(x0, x1)));
  const xb = Math.min(img.width - 1, Math.round(Math.max(x0, x1)));
  const ya = Math.max(0, Math.round(Math.min(y0, y1)));
  const yb = Math.min(img.height - 1, Math.round(Math.max(y0, y1)));
  for (let y = ya; y <= yb; y++) {
    for (let x = xa; x <= xb; x++) {
      if (alpha >= 1) setPixel(img, x, y, c);
      else blendPixel(img, x, y, c, alpha);
    }
  }
}

/** Copies src into dst with its top-left corner at (dx, dy), clipped. */
export function blit(dst: RgbaImage, src: RgbaImage, dx: number, dy: number): void {
  for (let y = 0; y < src.height; y++) {
    const ty = y + dy;
    if (ty < 0 || ty >= dst.height) continue;
    for (let x = 0; x < src.width; x++) {
      const tx = x + dx;
      if (tx < 0 || tx >= dst.width) continue;
      const so = (y * src.width + x) * 4;
      const to = (ty * dst.width + tx) * 4;
      dst.data[to] = src.data[so];
      dst.data[to + 1] = src.data[so + 1];
      dst.data[to + 2] = src.data[so + 2];
      dst.data[to + 3] = src.data[so + 3];
    }
  }
}

// 5x7 glyphs, one string of 7 rows per character, '#' = ink.
const GLYPHS: Record<string, string[]> = {
  '0': [' ### ', '#   #', '#  ##', '# # #', '##  #', '#   #', ' ### '],
  '1': ['  #  ', ' ##  ', '  #  ', '  #  ', '  #  ', '  #  ', ' ### '],
  '2': [' ### ', '#   #', '    #', '   # ', '  #  ', ' #   ', '#####'],
  '3': ['#####', '   # ', '  #  ', '   # ', '    #', '#   #', ' ### '],
  '4': ['   # ', '  ## ', ' # # ', '#  # ', '#####', '   # ', '   # '],
  '5': ['#####', '#    ', '#### ', '    #', '    #', '#   #', ' ### '],
  '6': ['  ## ', ' #   ', '#    ', '#### ', '#   #', '#   #', ' ### '],
  '7': ['#####', '    #', '   # ', '  #  ', ' #   ', ' #   ', ' #   '],
  '8': [' ### ', '#   #', '#   #', ' ### ', '#   #', '#   #', ' ### '],
  '9': [' ### ', '#   #', '#   #', ' ####', '    #', '   # ', ' ##  '],
  '.': ['     ', '     ', '     ', '     ', '     ', ' ##  ', ' ##  '],
  '-': ['     ', '     ', '     ', '#####', '     ', '     ', '     '],
  '+': ['     ', '  #  ', '  #  ', '#####', '  #  ', '  #  ', '     '],
  '/': ['    #', '    #', '   # ', '  #  ', ' #   ', '#    ', '#    '],
  '#': [' # # ', ' # # ', '#####', ' # # ', '#####', ' # # ', ' # # '],
  '%': ['##   ', '##  #', '   # ', '  #  ', ' #   ', '#  ##', '   ##'],
  ':': ['     ', ' ##  ', ' ##  ', '     ', ' ##  ', ' ##  ', '     '],
  ' ': ['     ', '     ', '     ', '     ', '     ', '     ', '     '],
};

/** Width in pixels of `text` drawn by drawText at the given scale (6 px advance per glyph at scale 1). */
export function textWidth(text: string, scale = 1): number {
  return text.length === 0 ? 0 : (text.length * 6 - 1) * scale;
}

/**
 * Draws `text` with the built-in 5x7 font, top-left at (x, y). Only digits
 * and `. - + / # % :` and space are available (enough for scores, ranks and
 * axis ticks); any other character throws, so a typo cannot silently vanish.
 */
export function drawText(img: RgbaImage, text: string, x: number, y: number, c: Rgba, scale = 1): void {
  let cx = Math.round(x);
  const cy = Math.round(y);
  for (const ch of text) {
    const g = GLYPHS[ch];
    if (!g) throw new Error(`drawText: no glyph for '${ch}' (the built-in font has digits and ". - + / # % :" only)`);
    for (let r = 0; r < 7; r++) {
      for (let col = 0; col < 5; col++) {
        if (g[r][col] !== '#') continue;
        for (let a = 0; a < scale; a++) for (let b = 0; b < scale; b++) setPixel(img, cx + col * scale + a, cy + r * scale + b, c);
      }
    }
    cx += 6 * scale;
  }
}

export function encodePng(img: RgbaImage): Buffer {
  const png = new PNG({ width: img.width, height: img.height });
  png.data = Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength);
  return PNG.sync.write(png, { colorType: 6 });
}

export function decodePng(buf: Buffer): RgbaImage {
  const png = PNG.sync.read(buf);
  return { width: png.width, height: png.height, data: new Uint8Array(png.data) };
}
