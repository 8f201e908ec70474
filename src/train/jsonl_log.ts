// JSON-lines training log: one JSON object per line, appended and flushed per
// record so the file is readable (and tail -f-able) while training runs and a
// crash loses at most the line being written. Every record gets `time` (ISO
// 8601) first. JSON has no NaN/Infinity, so non-finite numbers are written as
// the strings "NaN", "Infinity", "-Infinity" (not silently as null); bigints
// as decimal strings.
import * as fs from 'node:fs';
import * as path from 'node:path';

function replacer(_key: string, value: unknown): unknown {
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  if (typeof value === 'bigint') return value.toString();
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) return Array.from(value as unknown as ArrayLike<number>, (v) => (typeof v === 'bigint' ? String(v) : v));
  return value;
}

export interface JsonlLoggerOptions {
  /** Keep existing lines (resume) instead of starting a new file. Default true. */
  append?: boolean;
}

export class JsonlLogger {
  readonly path: string;
  private fd: number | null;

  constructor(file: string, opts: JsonlLoggerOptions = {}) {
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    this.path = file;
    this.fd = fs.openSync(file, opts.append ?? true ? 'a' : 'w');
  }

  /** Appends one record (an object) as a line. */
  log(record: Record<string, unknown>): void {
    if (this.fd === null) throw new Error(`JsonlLogger: ${this.path} is closed`);
    if (typeof record !== 'object' || record === null || Array.isArray(record)) throw new Error('JsonlLogger.log: record must be a plain object');
    const line = JSON.stringify({ time: new Date().toISOString(), ...record }, replacer) + '\n';
    fs.writeSync(this.fd, line);
  }

  close(): void {
    if (this.fd === null) return;
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
    this.fd = null;
  }
}

/** Reads a JSON-lines file; a torn last line (crash mid-write) is skipped, any other bad line is an error. */
export function readJsonl(file: string): Record<string, unknown>[] {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const out: Record<string, unknown>[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      out.push(JSON.parse(line));
    } catch (e) {
      if (i === lines.length - 1) return; // unterminated last line
      throw new Error(`${file}:${i + 1}: not valid JSON (${(e as Error).message})`);
    }
  });
  return out;
}
