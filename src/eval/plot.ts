// FROC curve as a PNG: log2 x-axis (false positives per scan) with ticks and
// grid lines at the FP rates, linear y-axis (sensitivity 0..1), the curve(s)
// and an optional bootstrap confidence band. Numbers are drawn with the 5x7
// bitmap font of src/infer/draw.ts; there are no other text labels.
import { writeFileSync } from 'node:fs';
import { COLORS, createImage, drawLine, drawText, encodePng, fillRect, textWidth, type Rgba, type RgbaImage } from '../infer/draw.js';
import { LUNA16_FP_RATES, sensitivityAt, type FrocBand, type FrocCurve, type FrocResult } from './froc.js';

export interface FrocSeries {
  curve: Pick<FrocCurve, 'fps' | 'sensitivity'>;
  color?: Rgba;
}

export interface FrocPlotOptions {
  width?: number;
  height?: number;
  /** x-axis range in FPs per scan (default [0.1, 8.5], LUNA16's plot range). */
  xRange?: readonly [number, number];
  /** Ticks / vertical grid lines (default the LUNA16 rates 1/8 .. 8). */
  xTicks?: readonly number[];
  /** Confidence band drawn under the curves. */
  band?: FrocBand;
  bandColor?: Rgba;
  /** Draw tick numbers (default true). */
  tickLabels?: boolean;
}

export interface PlotLayout {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
  /** Pixel column of an FP rate. */
  xToPx(fp: number): number;
  /** Pixel row of a sensitivity. */
  yToPx(s: number): number;
  /** FP rate at a pixel column (inverse of xToPx). */
  pxToX(px: number): number;
}

export const DEFAULT_CURVE_COLOR: Rgba = [30, 90, 220, 255];
export const DEFAULT_BAND_COLOR: Rgba = [150, 185, 250, 255];

/** Plot geometry shared by the renderer and the tests. */
export function frocPlotLayout(opts: FrocPlotOptions = {}): PlotLayout {
  const width = opts.width ?? 640;
  const height = opts.height ?? 480;
  if (!(Number.isInteger(width) && Number.isInteger(height) && width >= 160 && height >= 120)) {
    throw new Error(`plotFroc: width and height must be integers >= 160x120, got ${width}x${height}`);
  }
  const [lo, hi] = opts.xRange ?? [0.1, 8.5];
  if (!(lo > 0 && hi > lo)) throw new Error(`plotFroc: xRange must satisfy 0 < lo < hi, got [${lo}, ${hi}]`);
  const left = 48;
  const right = width - 16;
  const top = 14;
  const bottom = height - 30;
  const l0 = Math.log2(lo);
  const l1 = Math.log2(hi);
  return {
    width,
    height,
    left,
    right,
    top,
    bottom,
    xToPx: (fp) => Math.round(left + ((Math.log2(fp) - l0) / (l1 - l0)) * (right - left)),
    yToPx: (s) => Math.round(bottom - s * (bottom - top)),
    pxToX: (px) => 2 ** (l0 + ((px - left) / (right - left)) * (l1 - l0)),
  };
}

function bandAt(band: FrocBand, fp: number, key: 'lower' | 'upper'): number {
  // Linear in log(fp) between grid points, clamped at the ends.
  const f = band.fps;
  if (fp <= f[0]) return band[key][0];
  if (fp >= f[f.length - 1]) return band[key][f.length - 1];
  let j = 0;
  while (f[j + 1] < fp) j++;
  const t = (Math.log(fp) - Math.log(f[j])) / (Math.log(f[j + 1]) - Math.log(f[j]));
  return band[key][j] + t * (band[key][j + 1] - band[key][j]);
}

function tickText(v: number): string {
  return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(3)));
}

/** Renders FROC curves (a FrocResult: its curve and bootstrap band) to an RGBA image. */
export function plotFroc(input: FrocResult | FrocSeries[], opts: FrocPlotOptions = {}): RgbaImage {
  const series: FrocSeries[] = Array.isArray(input) ? input : [{ curve: input.curve }];
  const band = opts.band ?? (Array.isArray(input) ? undefined : input.bootstrap?.band);
  const L = frocPlotLayout(opts);
  const img = createImage(L.width, L.height, COLORS.white);
  const xTicks = opts.xTicks ?? LUNA16_FP_RATES;

  if (band) {
    const c = opts.bandColor ?? DEFAULT_BAND_COLOR;
    for (let px = L.left; px <= L.right; px++) {
      const fp = L.pxToX(px);
      const lo = bandAt(band, fp, 'lower');
      const hi = bandAt(band, fp, 'upper');
      if (Number.isFinite(lo) && Number.isFinite(hi)) fillRect(img, px, L.yToPx(hi), px, L.yToPx(lo), c, 0.6);
    }
  }
  // Grid.
  for (const t of xTicks) {
    const px = L.xToPx(t);
    if (px < L.left || px > L.right) continue;
    for (let y = L.top; y <= L.bottom; y += 2) fillRect(img, px, y, px, y, COLORS.lightGray);
  }
  for (let k = 0; k <= 10; k++) {
    const py = L.yToPx(k / 10);
    for (let x = L.left; x <= L.right; x += 2) fillRect(img, x, py, x, py, COLORS.lightGray);
  }
  // Axes and ticks.
  drawLine(img, L.left, L.bottom, L.right, L.bottom, COLORS.black);
  drawLine(img, L.left, L.top, L.left, L.bottom, COLORS.black);
  const labels = opts.tickLabels ?? true;
  for (const t of xTicks) {
    const px = L.xToPx(t);
    if (px < L.left || px > L.right) continue;
    drawLine(img, px, L.bottom, px, L.bottom + 4, COLORS.black);
    if (labels) {
      const s = tickText(t);
      drawText(img, s, px - Math.floor(textWidth(s) / 2), L.bottom + 8, COLORS.black);
    }
  }
  for (let k = 0; k <= 10; k++) {
    const py = L.yToPx(k / 10);
    drawLine(img, L.left - 4, py, L.left, py, COLORS.black);
    if (labels && k % 2 === 0) {
      const s = (k / 10).toFixed(1);
      drawText(img, s, L.left - 8 - textWidth(s), py - 3, COLORS.black);
    }
  }
  // Curves, sampled at every pixel column.
  for (const s of series) {
    const c = s.color ?? DEFAULT_CURVE_COLOR;
    let prev: [number, number] | null = null;
    for (let px = L.left; px <= L.right; px++) {
      const v = sensitivityAt(s.curve, L.pxToX(px));
      if (!Number.isFinite(v)) {
        prev = null;
        continue;
      }
      const py = L.yToPx(v);
      if (prev) drawLine(img, prev[0], prev[1], px, py, c, 2);
      else drawLine(img, px, py, px, py, c, 2);
      prev = [px, py];
    }
  }
  return img;
}

/** Writes the FROC plot as a PNG file. */
export function writeFrocPlot(path: string, input: FrocResult | FrocSeries[], opts: FrocPlotOptions = {}): void {
  writeFileSync(path, encodePng(plotFroc(input, opts)));
}
