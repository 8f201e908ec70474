import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { afterAll, describe, expect, it } from 'vitest';
import { COLORS, createImage, drawLine, drawRect, drawText, encodePng, getPixel } from '../../src/infer/draw.js';
import { detectionPictures, overviewPicture, writeDetectionPictures } from '../../src/infer/pictures.js';
import type { Volume } from '../../src/io/volume.js';

const dir = mkdtempSync(join(tmpdir(), 'detseg3d-pictures-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// 20 x 16 x 10 volume, spacing (1, 1, 2) mm, values encoding position so that
// the orientation of every panel can be checked: v = -1000 + 10 x + 40 y + 3 z.
const X = 20;
const Y = 16;
const Z = 10;
const value = (x: number, y: number, z: number) => -1000 + 10 * x + 40 * y + 3 * z;
function makeVolume(): Volume {
  const data = new Float32Array(X * Y * Z);
  for (let z = 0; z < Z; z++) for (let y = 0; y < Y; y++) for (let x = 0; x < X; x++) data[x + X * (y + Y * z)] = value(x, y, z);
  return {
    data,
    dims: [X, Y, Z],
    // Oblique-free but anisotropic, LPS-like flips: spacing is still (1, 1, 2).
    affine: [
      [-1, 0, 0, 10],
      [0, -1, 0, 20],
      [0, 0, 2, -5],
      [0, 0, 0, 1],
    ],
  };
}
// Lung window W 1500 L -600: grey = clamp((v - (-1350)) / 1500 * 255).
const grey = (v: number) => Math.max(0, Math.min(255, Math.round(((v + 1350) / 1500) * 255)));

const dets = {
  // Detection A: x [5,9) y [4,8) z [3,6), centre voxel (7, 6, 4). Detection B below threshold.
  boxes: new Float32Array([5, 4, 3, 9, 8, 6, 0, 0, 0, 2, 2, 2]),
  scores: new Float32Array([0.8, 0.1]),
  labels: new Int32Array([0, 0]),
};
const gt = new Float32Array([12, 10, 2, 16, 14, 8]);

function decode(buf: Buffer) {
  const png = PNG.sync.read(buf);
  return { width: png.width, height: png.height, data: new Uint8Array(png.data) };
}

describe('detectionPictures', () => {
  it('composes axial | coronal | sagittal panels with square mm pixels and box outlines', () => {
    const pics = detectionPictures(makeVolume(), dets, { groundTruth: gt });
    expect(pics.length).toBe(1); // 0.1 < default threshold 0.5
    expect(pics[0].rank).toBe(1);
    expect(pics[0].index).toBe(0);
    const img = decode(encodePng(pics[0].image));
    // Panels at 1 px/mm: axial 20x16, coronal 20x(10*2)=20x20, sagittal 16x20; gaps 4; header 11.
    expect(img.width).toBe(20 + 4 + 20 + 4 + 16);
    expect(img.height).toBe(20 + 11);
    const H = 11;
    // Axial panel at z = 4: row v shows y = 15 - v. Box outline top-left: u = 5, v = 16 - 8 = 8.
    expect(getPixel(img, 5, H + 8)).toEqual([...COLORS.red]);
    expect(getPixel(img, 8, H + 11)).toEqual([...COLORS.red]); // bottom-right: u = 9-1, v = 16-4-1
    // GT crosses z = 4 ([2, 8)): outline at u = 12, v = 16 - 14 = 2.
    expect(getPixel(img, 12, H + 2)).toEqual([...COLORS.green]);
    // Interior pixel: axial (u=1, v=1) -> voxel (1, 14, 4).
    expect(getPixel(img, 1, H + 1)).toEqual([grey(value(1, 14, 4)), grey(value(1, 14, 4)), grey(value(1, 14, 4)), 255]);
    // Coronal panel (x right, z up, 2 px per z voxel) at y = 6, starts at u = 24; pixel (u=24+3, v=5) -> x 3, z = floor((19-5+0.5)/2) = 7.
    expect(getPixel(img, 27, H + 5)[0]).toBe(grey(value(3, 6, 7)));
    // Its box outline: z [3,6) -> v from 20 - 12 = 8 to 20 - 6 - 1 = 13; x from 5 -> u = 29.
    expect(getPixel(img, 29, H + 8)).toEqual([...COLORS.red]);
    expect(getPixel(img, 29, H + 13)).toEqual([...COLORS.red]);
    // Sagittal panel (y right, z up) at x = 7, starts at u = 48; pixel (48 + 2, 1) -> y 2, z 9.
    expect(getPixel(img, 50, H + 1)[0]).toBe(grey(value(7, 2, 9)));
    expect(getPixel(img, 48 + 4, H + 8)).toEqual([...COLORS.red]);
  });

  it('honours window/level, pixelsPerMm and the threshold', () => {
    const vol = makeVolume();
    const pics = detectionPictures(vol, dets, { window: 400, level: -700, pixelsPerMm: 2, scoreThreshold: 0.05, labels: false });
    expect(pics.map((p) => p.rank)).toEqual([1, 2]);
    const img = pics[0].image;
    expect(img.width).toBe(40 + 4 + 40 + 4 + 32);
    expect(img.height).toBe(40);
    // Pixel (3, 3) -> voxel (1, 16 - 1 - 1 = 14, 4): W 400 L -700 -> (v + 900) / 400 * 255, clamped.
    const v = value(1, 14, 4);
    expect(getPixel(img, 3, 3)[0]).toBe(Math.max(0, Math.min(255, Math.round(((v + 900) / 400) * 255))));
    const auto = detectionPictures(vol, dets, { window: 'auto' });
    expect(auto.length).toBe(1);
  });

  it('draws an overview MIP along z with all boxes, and writes decodable PNG files', () => {
    const vol = makeVolume();
    const ov = overviewPicture(vol, dets, { groundTruth: gt, labels: false });
    expect([ov.width, ov.height]).toEqual([20, 16]);
    // MIP along z of v(x, y, z) is v(x, y, 9); pixel (1, 1) -> voxel (1, 14).
    expect(getPixel(ov, 1, 1)[0]).toBe(grey(value(1, 14, 9)));
    expect(getPixel(ov, 5, 8)).toEqual([...COLORS.red]);
    expect(getPixel(ov, 12, 2)).toEqual([...COLORS.green]);

    const paths = writeDetectionPictures(vol, dets, join(dir, 'out'), 'scan1', { groundTruth: gt });
    expect(paths.map((p) => p.slice(dir.length + 1))).toEqual(['out/scan1_det1.png', 'out/scan1_overview.png']);
    for (const p of paths) {
      expect(existsSync(p)).toBe(true);
      const png = PNG.sync.read(readFileSync(p));
      expect(png.width).toBeGreaterThan(0);
    }
    expect(PNG.sync.read(readFileSync(paths[0])).width).toBe(64);
  });

  it('rejects inconsistent volumes', () => {
    const vol = makeVolume();
    expect(() => detectionPictures({ ...vol, dims: [X, Y, Z + 1] }, dets)).toThrow(/voxels but dims/);
    expect(() => detectionPictures(vol, { ...dets, scores: new Float32Array(1) })).toThrow(/2 boxes but 1 scores/);
    expect(() => detectionPictures(vol, dets, { window: -5 })).toThrow(/window/);
  });
});

describe('draw helpers', () => {
  it('draws lines, rectangles and digits', () => {
    const img = createImage(30, 20, COLORS.white);
    drawLine(img, 0, 0, 9, 3, COLORS.blue);
    expect(getPixel(img, 0, 0)).toEqual([...COLORS.blue]);
    expect(getPixel(img, 9, 3)).toEqual([...COLORS.blue]);
    drawRect(img, 12, 2, 20, 8, COLORS.red, 2);
    expect(getPixel(img, 12, 5)).toEqual([...COLORS.red]);
    expect(getPixel(img, 13, 5)).toEqual([...COLORS.red]);
    expect(getPixel(img, 14, 5)).toEqual([...COLORS.white]);
    drawText(img, '1', 0, 10, COLORS.black);
    // Glyph '1' row 0 is "  #  ": ink at column 2 only.
    expect(getPixel(img, 2, 10)).toEqual([...COLORS.black]);
    expect(getPixel(img, 1, 10)).toEqual([...COLORS.white]);
    expect(() => drawText(img, 'a', 0, 0, COLORS.black)).toThrow(/no glyph/);
    // Clipped drawing outside the image is harmless.
    drawRect(img, -5, -5, 100, 100, COLORS.green);
    expect(getPixel(img, 29, 19)).toEqual([...COLORS.white]);
  });
});
