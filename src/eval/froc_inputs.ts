// Builds froc() inputs from exported results and LUNA16 annotation files, for
// evaluation in world millimetres: world boxes are used as "voxel" boxes with
// spacing (1, 1, 1), so the LUNA16 distance criterion is in mm. Predictions
// and ground truth must be in the same world frame (LUNA16's annotations.csv
// and our default export are both LPS).
import { readFileSync } from 'node:fs';
import { cccwhdToCorners, csvNumber, parseCsvText, seriesUidFromPath, type CsvRow, type ResultsFile } from '../infer/export.js';
import type { FrocGroundTruth, FrocPrediction } from './froc.js';

const MM: [number, number, number] = [1, 1, 1];

/** Predictions per image of a results JSON (id = seriesuid of the image path). */
export function predictionsFromResults(file: ResultsFile): FrocPrediction[] {
  const byId = new Map<string, FrocPrediction>();
  for (const e of file.validation) {
    const id = seriesUidFromPath(e.image);
    if (byId.has(id)) throw new Error(`results: two entries for seriesuid '${id}' (${e.image})`);
    byId.set(id, {
      id,
      boxes: e.box.length ? cccwhdToCorners(e.box) : new Float64Array(0),
      scores: Float64Array.from(e.label_scores),
      labels: Int32Array.from(e.label),
      spacing: MM,
    });
  }
  return [...byId.values()];
}

/**
 * Predictions from CSV rows (readResultsCsv). A row's box is centred at
 * (coordX, coordY, coordZ) with the diameter columns as its size; rows
 * without sizes (a plain LUNA16 submission) become points, which is all the
 * distance criterion needs (the IoU criterion needs sizes).
 */
export function predictionsFromCsv(rows: CsvRow[]): FrocPrediction[] {
  const groups = new Map<string, CsvRow[]>();
  for (const r of rows) {
    const g = groups.get(r.seriesuid);
    if (g) g.push(r);
    else groups.set(r.seriesuid, [r]);
  }
  return [...groups].map(([id, g]) => {
    const size = (v: number) => (Number.isFinite(v) ? v : 0);
    return {
      id,
      boxes: cccwhdToCorners(g.map((r) => [r.coordX, r.coordY, r.coordZ, size(r.diameterX_mm), size(r.diameterY_mm), size(r.diameterZ_mm)])),
      scores: Float64Array.from(g, (r) => r.probability),
      labels: Int32Array.from(g, (r) => r.label),
      spacing: MM,
    };
  });
}

/**
 * Ground truth from a LUNA16 annotations CSV (seriesuid, coordX, coordY,
 * coordZ, diameter_mm; world LPS mm): each nodule becomes a cube of side
 * diameter_mm, so its hit radius is diameter_mm / 2 exactly as in LUNA16.
 * `seriesuids` lists every evaluated scan (LUNA16's seriesuids.csv); scans
 * without nodules get empty entries; without it, only annotated scans are
 * evaluated. `excluded` (annotations_excluded.csv) becomes ignore regions
 * (LUNA16 gives negative diameters there; those use `excludedDiameter`,
 * default 10 mm).
 */
export function groundTruthFromLuna16(
  annotations: string,
  opts: { seriesuids?: string[]; excluded?: string; excludedDiameter?: number } = {},
): FrocGroundTruth[] {
  const read = (pathOrText: string, what: string, fallbackDiameter?: number) => {
    const t = parseCsvText(pathOrText.includes('\n') ? pathOrText : readFileSync(pathOrText, 'utf8'));
    const uid = t.header.indexOf('seriesuid');
    if (uid < 0) throw new Error(`${what}: missing column 'seriesuid'`);
    const out = new Map<string, number[]>();
    for (const r of t.rows) {
      let d = csvNumber(t, r, 'diameter_mm');
      if (d < 0) {
        if (fallbackDiameter === undefined) throw new Error(`${what} line ${r.line}: negative diameter_mm ${d}`);
        d = fallbackDiameter;
      }
      const box = cccwhdToCorners([csvNumber(t, r, 'coordX'), csvNumber(t, r, 'coordY'), csvNumber(t, r, 'coordZ'), d, d, d]);
      const list = out.get(r.fields[uid]) ?? [];
      list.push(...box);
      out.set(r.fields[uid], list);
    }
    return out;
  };
  const nodules = read(annotations, 'annotations');
  const excluded = opts.excluded ? read(opts.excluded, 'excluded annotations', opts.excludedDiameter ?? 10) : new Map<string, number[]>();
  const ids = opts.seriesuids ?? [...nodules.keys()];
  return ids.map((id) => {
    const g: FrocGroundTruth = { id, boxes: Float64Array.from(nodules.get(id) ?? []), spacing: MM };
    const ex = excluded.get(id);
    if (ex) g.ignore = Float64Array.from(ex);
    return g;
  });
}
