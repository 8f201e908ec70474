// Cross-check with nibabel (the reference NIfTI implementation MONAI users
// rely on), when a Python with nibabel is installed; skipped otherwise.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readNifti, writeNifti } from '../../src/io/nifti.js';
import type { Affine } from '../../src/io/volume.js';

function findPython(): string | null {
  for (const py of ['python3', '/usr/bin/python3']) {
    try {
      execFileSync(py, ['-c', 'import nibabel, numpy'], { stdio: 'ignore' });
      return py;
    } catch {
      // not this one
    }
  }
  return null;
}
const python = findPython();
const dir = mkdtempSync(join(tmpdir(), 'detseg3d-nib-'));

function py(code: string): unknown {
  return JSON.parse(execFileSync(python!, ['-c', code], { encoding: 'utf8' }));
}

describe.skipIf(!python)('nibabel interoperability', () => {
  it('nibabel reads our files exactly: data, dtype, affine, qform = sform', async () => {
    const c = Math.cos(0.3), s = Math.sin(0.3);
    const affine: Affine = [
      [-0.75 * c, -0.5 * s, 0, 12.5],
      [-0.75 * s, 0.5 * c, 0, -7.25],
      [0, 0, 2, 30],
      [0, 0, 0, 1],
    ].map((r) => r.map(Math.fround));
    const dims: [number, number, number] = [4, 3, 2];
    const data = Int16Array.from({ length: 24 }, (_, i) => i * 37 - 400);
    for (const name of ['a.nii', 'a.nii.gz']) {
      const path = join(dir, name);
      await writeNifti(path, { data, dims, affine });
      const r = py(`
import json, nibabel as nib, numpy as np
img = nib.load(${JSON.stringify(path)})
h = img.header
d = np.asanyarray(img.dataobj)
print(json.dumps({
  "shape": list(img.shape), "dtype": str(h.get_data_dtype()),
  "data": d.flatten(order="F").tolist(),
  "affine": img.affine.tolist(), "qform": h.get_qform().tolist(), "sform": h.get_sform().tolist(),
  "codes": [int(h["qform_code"]), int(h["sform_code"])], "zooms": [float(z) for z in h.get_zooms()],
  "axcodes": "".join(nib.aff2axcodes(img.affine)),
}))`) as Record<string, unknown>;
      expect(r.shape).toEqual([4, 3, 2]);
      expect(r.dtype).toBe('int16');
      expect(r.data).toEqual(Array.from(data)); // Fortran order = x fastest
      expect(r.affine).toEqual(affine);
      expect(r.codes).toEqual([1, 1]);
      const q = r.qform as number[][];
      for (let i = 0; i < 3; i++) for (let j = 0; j < 4; j++) expect(q[i][j]).toBeCloseTo(affine[i][j], 5);
      expect((r.zooms as number[]).map((z) => +z.toFixed(5))).toEqual([0.75, 0.5, 2]);
      expect(r.axcodes).toBe('LAS');
    }
  });

  it('we read nibabel files exactly, including scl_slope/scl_inter and float64', async () => {
    const path = join(dir, 'nib.nii.gz');
    const path2 = join(dir, 'nib64.nii');
    const r = py(`
import json, nibabel as nib, numpy as np
x = (np.arange(60, dtype=np.float64).reshape((5, 4, 3), order="F") * 1.5 - 20.25)
aff = np.array([[0, 0, 1.5, -3], [-0.9, 0, 0, 4], [0, 1.2, 0, 5], [0, 0, 0, 1.0]])
img = nib.Nifti1Image(x.astype(np.int16), aff)
img.header.set_slope_inter(2.0, -7.0)
nib.save(img, ${JSON.stringify(path)})
nib.save(nib.Nifti1Image(x, aff), ${JSON.stringify(path2)})
back = nib.load(${JSON.stringify(path)})
print(json.dumps({"data": back.get_fdata().flatten(order="F").tolist(), "affine": back.affine.tolist(),
                  "x": x.flatten(order="F").tolist(), "axcodes": "".join(nib.aff2axcodes(aff))}))`) as Record<string, number[] | number[][] | string>;
    const v = await readNifti(path);
    expect(v.datatype).toBe('int16');
    expect(v.scaled).toBe(true);
    expect(Array.from(v.data)).toEqual(r.data);
    expect(v.affine).toEqual(r.affine);
    expect(v.orientation).toBe(r.axcodes);
    const v64 = await readNifti(path2);
    expect(v64.datatype).toBe('float64');
    expect(Array.from(v64.data)).toEqual(r.x);
  });
});
