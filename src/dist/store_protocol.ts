// Wire format of the rendezvous store, shared by the server and client in
// store.ts and by the native client (native/dist/store_client.h, used by
// Gloo). All integers little-endian; one request, then one reply, at a time
// per connection:
//   frame   = u32 body_length, body
//   request = u8 op, u32 timeout_ms, u32 nfields, nfields x (u32 len, bytes)
//   reply   = u8 status, u32 nfields, nfields x (u32 len, bytes)

export const Op = {
  SET: 1, GET: 2, ADD: 3, WAIT: 4, CHECK: 5, DELETE: 6, HELLO: 7, DEAD: 8, BYE: 9,
} as const;
export const Status = { OK: 0, TIMEOUT: 1, ERROR: 2 } as const;

/** Largest frame accepted (guards against a stray client sending garbage). */
export const MAX_FRAME = 256 * 1024 * 1024;

export function encodeFrame(head: number[], fields: readonly Uint8Array[]): Buffer {
  const headBytes = head.length === 2 ? 5 : 1; // request: op + timeout; reply: status
  let len = headBytes + 4;
  for (const f of fields) len += 4 + f.length;
  const out = Buffer.allocUnsafe(4 + len);
  out.writeUInt32LE(len, 0);
  out.writeUInt8(head[0], 4);
  let pos = 5;
  if (head.length === 2) {
    out.writeUInt32LE(head[1] >>> 0, 5);
    pos = 9;
  }
  out.writeUInt32LE(fields.length, pos);
  pos += 4;
  for (const f of fields) {
    out.writeUInt32LE(f.length, pos);
    pos += 4;
    out.set(f, pos);
    pos += f.length;
  }
  return out;
}

export interface Frame {
  code: number; // op (request) or status (reply)
  timeoutMs: number; // requests only
  fields: Buffer[];
}

/** Incremental frame reader: push() chunks, frames come out in order. */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  constructor(private readonly isRequest: boolean) {}

  push(chunk: Buffer): Frame[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const frames: Frame[] = [];
    for (;;) {
      if (this.buf.length < 4) break;
      const len = this.buf.readUInt32LE(0);
      if (len > MAX_FRAME || len < (this.isRequest ? 9 : 5))
        throw new Error(`rendezvous store: malformed frame (length ${len}); is another program using this port?`);
      if (this.buf.length < 4 + len) break;
      const body = this.buf.subarray(4, 4 + len);
      this.buf = this.buf.subarray(4 + len);
      frames.push(this.parse(body));
    }
    return frames;
  }

  private parse(body: Buffer): Frame {
    const code = body.readUInt8(0);
    let pos = 1;
    let timeoutMs = 0;
    if (this.isRequest) {
      timeoutMs = body.readUInt32LE(1);
      pos = 5;
    }
    const n = body.readUInt32LE(pos);
    pos += 4;
    const fields: Buffer[] = [];
    for (let i = 0; i < n; i++) {
      if (pos + 4 > body.length) throw new Error('rendezvous store: truncated frame');
      const l = body.readUInt32LE(pos);
      pos += 4;
      if (pos + l > body.length) throw new Error('rendezvous store: truncated frame');
      fields.push(Buffer.from(body.subarray(pos, pos + l)));
      pos += l;
    }
    return { code, timeoutMs, fields };
  }
}

/** Barrier/arrival keys end in `/rank<r>`, so the server can tell which rank a missing key belongs to. */
export function rankOfKey(key: string): number | undefined {
  const m = /\/rank(\d+)$/.exec(key);
  return m ? Number(m[1]) : undefined;
}
