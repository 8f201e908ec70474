// Crash-safe file replacement: write a temporary file in the target's
// directory, fsync it, rename it over the target (atomic on POSIX file
// systems and on NTFS for same-volume renames), then fsync the directory so
// the rename itself is durable. A crash or an exception at any point leaves
// either the previous file or the complete new one, never a torn file.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

/** Where the writer callback sends bytes. */
export interface AtomicSink {
  write(bytes: Uint8Array): void;
  /** Bytes written so far. */
  readonly bytesWritten: number;
}

function fsyncDir(dir: string): void {
  // Directory fsync is not possible on Windows (EISDIR/EPERM); there the rename is already durable enough.
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    /* best effort */
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * Replaces `target` with what `writer` produces, atomically. If `writer`
 * throws (or any I/O fails), the temporary file is removed, `target` is left
 * as it was, and the error is rethrown.
 */
export function writeFileAtomic(target: string, writer: (sink: AtomicSink) => void): void {
  const dir = path.dirname(path.resolve(target));
  fs.mkdirSync(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(target)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  const fd = fs.openSync(tmp, 'wx', 0o644);
  let closed = false;
  try {
    let written = 0;
    const sink: AtomicSink = {
      write(bytes: Uint8Array) {
        let off = 0;
        while (off < bytes.length) off += fs.writeSync(fd, bytes, off, bytes.length - off);
        written += bytes.length;
      },
      get bytesWritten() {
        return written;
      },
    };
    writer(sink);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    closed = true;
    fs.renameSync(tmp, target);
  } catch (err) {
    if (!closed) {
      try {
        fs.closeSync(fd);
      } catch {
        /* already failing */
      }
    }
    try {
      fs.unlinkSync(tmp);
    } catch {
      /* may not exist */
    }
    throw err;
  }
  fsyncDir(dir);
}

/** Atomically replaces `target` with the concatenation of `chunks`. */
export function writeBytesAtomic(target: string, ...chunks: Uint8Array[]): void {
  writeFileAtomic(target, (sink) => {
    for (const c of chunks) sink.write(c);
  });
}

/**
 * Replaces several files as close to atomically as POSIX allows: every new
 * file is first written and fsynced under a temporary name; only when all of
 * them are complete are they renamed over their targets, in the given order
 * (put the file that "commits" the set last). A failure while writing leaves
 * every target untouched; only a crash between two renames can leave a mixed
 * set, which callers detect with an id shared by the files.
 */
export function writeFilesAtomic(files: readonly { path: string; chunks: readonly Uint8Array[] }[]): void {
  const staged: { tmp: string; target: string }[] = [];
  try {
    for (const f of files) {
      const dir = path.dirname(path.resolve(f.path));
      fs.mkdirSync(dir, { recursive: true });
      const tmp = path.join(dir, `.${path.basename(f.path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
      const fd = fs.openSync(tmp, 'wx', 0o644);
      staged.push({ tmp, target: f.path });
      try {
        for (const c of f.chunks) {
          let off = 0;
          while (off < c.length) off += fs.writeSync(fd, c, off, c.length - off);
        }
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    }
  } catch (err) {
    for (const s of staged) fs.rmSync(s.tmp, { force: true });
    throw err;
  }
  for (const s of staged) fs.renameSync(s.tmp, s.target);
  for (const dir of new Set(staged.map((s) => path.dirname(path.resolve(s.target))))) fsyncDir(dir);
}
