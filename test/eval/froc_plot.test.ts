import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { afterAll, describe, expect, it } from 'vitest';
import { froc, type FrocGroundTruth, type FrocPrediction } from '../../src/eval/froc.js';
import { DEFAULT_BAND_COLOR, DEFAULT_CURVE_COLOR, frocPlotLayout, plotFroc, writeFrocPlot } from '../../src/eval/plot.js';
import { getPixel } from '../../src/infer/draw.js';

const dir = mkdtempSync(join(tmpdir(), 'detseg3d-froc-plot-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function cube(c: number[], d: number): number[] {
  return [c[0] - d / 2, c[1] - d / 2, c[2] - d / 2, c[0] + d / 2, c[1] + d / 2, c[2] + d / 2];
}

describe('FROC plot', () => {
  it('maps FP rates on a log2 axis', () => {
    const L = frocPlotLayout({ width: 640, height: 480, xRange: [0.125, 8] });
    expect(L.xToPx(0.125)).toBe(L.left);
    expect(L.xToPx(8)).toBe(L.right);
    // log2: 1 is exactly halfway between 1/8 and 8, and each doubling is the same width.
    expect(L.xToPx(1)).toBe(Math.round((L.left + L.right) / 2));
    expect(Math.abs(L.xToPx(2) - L.xToPx(1) - (L.xToPx(4) - L.xToPx(2)))).toBeLessThanOrEqual(1);
    expect(L.yToPx(0)).toBe(L.bottom);
    expect(L.yToPx(1)).toBe(L.top);
    expect(L.pxToX(L.xToPx(0.5))).toBeCloseTo(0.5, 1);
  });

  it('draws the curve and the bootstrap band into a decodable PNG of the requested size', () => {
    // 4 scans with one lesion each; scans 0 and 1 get a detection on the lesion, scans 2 and 3 one far away.
    const gt: FrocGroundTruth[] = [];
    const preds: FrocPrediction[] = [];
    for (let s = 0; s < 4; s++) {
      gt.push({ id: `s${s}`, boxes: new Float32Array(cube([20, 20, 20], 10)) });
      const boxes = [...cube(s < 2 ? [20, 20, 20] : [80, 80, 80], 2)];
      preds.push({ id: `s${s}`, boxes: new Float32Array(boxes), scores: new Float32Array([0.9]) });
    }
    // Scans 0, 1: TP at 0.9; scans 2, 3: FP at 0.9 -> curve (0,0) -> (0.5, 0.5) in one tied step, flat after.
    const r = froc(preds, gt, { bootstraps: 300, seed: 5 });
    expect(r.sensitivity[6]).toBe(0.5);
    const path = join(dir, 'froc.png');
    writeFrocPlot(path, r, { width: 500, height: 360 });
    const png = PNG.sync.read(readFileSync(path));
    expect([png.width, png.height]).toEqual([500, 360]);
    const img = { width: png.width, height: png.height, data: new Uint8Array(png.data) };
    const L = frocPlotLayout({ width: 500, height: 360 });
    // On the flat part (FP rate 4) the curve pixel has the curve colour.
    expect(getPixel(img, L.xToPx(4) + 3, L.yToPx(0.5))).toEqual([...DEFAULT_CURVE_COLOR]);
    // The band: at FP rate 4 the bootstrap interval is wide (resamples with mostly FP scans reach 0, mostly
    // TP scans 1); a pixel at sensitivity 0.25 (no grid line there) is the band colour blended 0.6 over white.
    const lo = r.bootstrap!.band.lower[r.bootstrap!.band.fps.findIndex((f) => f >= 4)];
    const hi = r.bootstrap!.band.upper[r.bootstrap!.band.fps.findIndex((f) => f >= 4)];
    expect(lo).toBeLessThan(0.25);
    expect(hi).toBeGreaterThan(0.3);
    const blended = DEFAULT_BAND_COLOR.slice(0, 3).map((c) => Math.round(255 * 0.4 + c * 0.6));
    expect(getPixel(img, L.xToPx(4) + 3, L.yToPx(0.25))).toEqual([...blended, 255]);
    // Far outside the plot area stays white; the x axis is black.
    expect(getPixel(img, L.right + 5, L.top + 5)).toEqual([255, 255, 255, 255]);
    expect(getPixel(img, L.xToPx(3), L.bottom)).toEqual([0, 0, 0, 255]);
  });

  it('plots several series in their own colours', () => {
    const red = [220, 0, 0, 255] as const;
    const img = plotFroc(
      [
        { curve: { fps: [0, 8], sensitivity: [0.9, 0.9] }, color: red },
        { curve: { fps: [0, 8], sensitivity: [0.3, 0.3] } },
      ],
      { tickLabels: false },
    );
    expect([img.width, img.height]).toEqual([640, 480]);
    const L = frocPlotLayout();
    expect(getPixel(img, L.xToPx(3), L.yToPx(0.9))).toEqual([...red]);
    expect(getPixel(img, L.xToPx(3), L.yToPx(0.3))).toEqual([...DEFAULT_CURVE_COLOR]);
    expect(() => plotFroc([], { width: 10 })).toThrow(/width and height/);
  });
});
