// Rendezvous store: a small TCP key-value store served by the master (the
// launcher on node 0, or rank 0 itself under torchrun/mpirun/srun). It carries
// the NCCL unique id, Gloo's transport addresses (the native client in
// native/dist/store_client.cpp) and barriers. Every blocking call has a
// timeout and fails with a message naming the ranks that did not arrive; a
// rank whose connection drops (its process died) is reported at once instead
// of after the timeout. Wire format: store_protocol.ts.
import net from 'node:net';
import { FrameReader, Op, Status, encodeFrame, rankOfKey } from './store_protocol.js';

const enc = (s: string) => Buffer.from(s, 'utf8');

/** Default for every store wait and collective: DETSEG3D_DIST_TIMEOUT seconds, else 30 minutes (torch's default). */
export function defaultTimeoutMs(): number {
  const s = Number(process.env.DETSEG3D_DIST_TIMEOUT);
  return Number.isFinite(s) && s > 0 ? s * 1000 : 1_800_000;
}

interface Waiter {
  sock: net.Socket;
  keys: string[];
  reply: (status: number, fields: Buffer[]) => void;
  timer: NodeJS.Timeout;
}

/** The store's server side. Keeps everything in memory. */
export class StoreServer {
  private readonly data = new Map<string, Buffer>();
  private waiters: Waiter[] = [];
  private readonly dead = new Map<number, string>();
  private readonly sockets = new Set<net.Socket>();

  private constructor(private readonly server: net.Server, readonly port: number) {}

  /** Listens on host:port (port 0 = any free port; see `.port`). */
  static listen(port: number, host = '0.0.0.0'): Promise<StoreServer> {
    return new Promise((resolve, reject) => {
      const server = net.createServer();
      server.once('error', (e: NodeJS.ErrnoException) => {
        reject(
          new Error(
            e.code === 'EADDRINUSE'
              ? `rendezvous store: port ${port} on ${host} is already in use; choose another --master_port / MASTER_PORT ` +
                  '(or set DETSEG3D_STORE_PORT)'
              : `rendezvous store: cannot listen on ${host}:${port}: ${e.message}`,
          ),
        );
      });
      server.listen(port, host, () => {
        const s = new StoreServer(server, (server.address() as net.AddressInfo).port);
        server.on('connection', (sock) => s.accept(sock));
        resolve(s);
      });
    });
  }

  /** Ranks whose HELLO connection closed without BYE, with the reason text. */
  deadRanks(): number[] {
    return [...this.dead.keys()].sort((a, b) => a - b);
  }

  close(): Promise<void> {
    for (const w of this.waiters) clearTimeout(w.timer);
    this.waiters = [];
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private accept(sock: net.Socket): void {
    sock.setNoDelay(true);
    this.sockets.add(sock);
    const reader = new FrameReader(true);
    let rank: number | undefined;
    let said_bye = false;
    // Requests of one connection are answered in order; a pending wait holds the ones behind it.
    let chain: Promise<void> = Promise.resolve();
    sock.on('data', (chunk) => {
      let frames;
      try {
        frames = reader.push(chunk);
      } catch {
        sock.destroy();
        return;
      }
      for (const f of frames) {
        chain = chain.then(
          () =>
            new Promise<void>((done) => {
              const reply = (status: number, fields: Buffer[]) => {
                if (!sock.destroyed) sock.write(encodeFrame([status], fields));
                done();
              };
              if (f.code === Op.HELLO) rank = Number(f.fields[0]?.toString());
              if (f.code === Op.BYE) said_bye = true;
              this.handle(sock, f.code, f.timeoutMs, f.fields, reply);
            }),
        );
      }
    });
    const closed = () => {
      if (!this.sockets.delete(sock)) return;
      // Waits of a closed connection are answered nowhere: drop them with their timers.
      for (const w of this.waiters) if (w.sock === sock) clearTimeout(w.timer);
      this.waiters = this.waiters.filter((w) => w.sock !== sock);
      if (rank !== undefined && !said_bye && !this.dead.has(rank)) {
        this.dead.set(rank, `rank ${rank} disconnected from the rendezvous store (its process exited or was killed)`);
        this.failWaitersOf(rank);
      }
    };
    sock.on('close', closed);
    sock.on('error', () => sock.destroy());
  }

  private handle(sock: net.Socket, op: number, timeoutMs: number, fields: Buffer[], reply: (s: number, f: Buffer[]) => void): void {
    const key = fields[0]?.toString('utf8') ?? '';
    switch (op) {
      case Op.SET:
        this.data.set(key, fields[1] ?? Buffer.alloc(0));
        this.wake();
        return reply(Status.OK, []);
      case Op.ADD: {
        const cur = this.data.has(key) ? Number(this.data.get(key)!.toString()) : 0;
        const next = cur + Number(fields[1]?.toString() ?? '0');
        this.data.set(key, enc(String(next)));
        this.wake();
        return reply(Status.OK, [enc(String(next))]);
      }
      case Op.CHECK:
        return reply(Status.OK, [enc(fields.every((k) => this.data.has(k.toString())) ? '1' : '0')]);
      case Op.DELETE:
        return reply(Status.OK, [enc(this.data.delete(key) ? '1' : '0')]);
      case Op.HELLO:
      case Op.BYE:
        return reply(Status.OK, []);
      case Op.DEAD:
        return reply(Status.OK, [...this.dead.values()].map(enc));
      case Op.GET:
      case Op.WAIT: {
        const keys = fields.map((k) => k.toString('utf8'));
        const answer = (status: number, f: Buffer[]) =>
          status === Status.OK && op === Op.GET ? reply(status, [this.data.get(key)!]) : reply(status, f);
        const deadReason = this.deadAmong(keys);
        if (deadReason) return answer(Status.ERROR, [enc(deadReason)]);
        if (keys.every((k) => this.data.has(k))) return answer(Status.OK, []);
        const w: Waiter = {
          sock,
          keys,
          reply: answer,
          timer: setTimeout(() => {
            this.waiters = this.waiters.filter((x) => x !== w);
            answer(Status.TIMEOUT, keys.filter((k) => !this.data.has(k)).map(enc));
          }, Math.max(1, timeoutMs || defaultTimeoutMs())),
        };
        this.waiters.push(w);
        return;
      }
      default:
        return reply(Status.ERROR, [enc(`unknown store operation ${op}`)]);
    }
  }

  private wake(): void {
    const still: Waiter[] = [];
    for (const w of this.waiters) {
      if (w.keys.every((k) => this.data.has(k))) {
        clearTimeout(w.timer);
        w.reply(Status.OK, []);
      } else still.push(w);
    }
    this.waiters = still;
  }

  private deadAmong(keys: string[]): string | undefined {
    for (const k of keys) {
      const r = rankOfKey(k);
      if (r !== undefined && !this.data.has(k) && this.dead.has(r)) return this.dead.get(r);
    }
    return undefined;
  }

  private failWaitersOf(_rank: number): void {
    const still: Waiter[] = [];
    for (const w of this.waiters) {
      const reason = this.deadAmong(w.keys);
      if (reason) {
        clearTimeout(w.timer);
        w.reply(Status.ERROR, [enc(reason)]);
      } else still.push(w);
    }
    this.waiters = still;
  }
}

export interface StoreClientOptions {
  /** This process's rank (announced to the server so its death is noticed); omit for observers. */
  rank?: number;
  worldSize?: number;
  /** How long to keep retrying a refused connection (the master may still be starting). Default 60 s. */
  connectTimeoutMs?: number;
  /** Default timeout of get/wait/barrier. Default: defaultTimeoutMs(). */
  timeoutMs?: number;
}

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Client side; one TCP connection, requests answered in order. */
export class StoreClient {
  private readonly reader = new FrameReader(false);
  private pending: { resolve: (f: { code: number; fields: Buffer[] }) => void; reject: (e: Error) => void }[] = [];
  private lost: Error | undefined;
  private readonly barrierGen = new Map<string, number>();
  readonly timeoutMs: number;

  private constructor(
    private readonly sock: net.Socket,
    readonly host: string,
    readonly port: number,
    readonly rank: number | undefined,
    readonly worldSize: number | undefined,
    timeoutMs: number,
  ) {
    this.timeoutMs = timeoutMs;
    sock.setNoDelay(true);
    sock.on('data', (chunk) => {
      try {
        for (const f of this.reader.push(chunk)) this.pending.shift()?.resolve(f);
      } catch (e) {
        this.fail(e as Error);
      }
    });
    sock.on('close', () =>
      this.fail(
        new Error(
          `rendezvous store at ${host}:${port}: connection lost; the master process (rank 0 or the launcher) has exited`,
        ),
      ),
    );
    sock.on('error', () => {});
  }

  /**
   * Connects to host:port, retrying refused connections until connectTimeoutMs.
   * Unresolvable or unreachable addresses fail at once with the address in the message.
   */
  static async connect(host: string, port: number, opts: StoreClientOptions = {}): Promise<StoreClient> {
    const connectTimeout = opts.connectTimeoutMs ?? 60_000;
    const deadline = Date.now() + connectTimeout;
    let last = '';
    for (;;) {
      try {
        const sock = await new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect({ host, port });
          const t = setTimeout(() => {
            s.destroy();
            reject(Object.assign(new Error('connection attempt timed out'), { code: 'ETIMEDOUT' }));
          }, Math.max(100, Math.min(5000, deadline - Date.now())));
          s.once('connect', () => {
            clearTimeout(t);
            resolve(s);
          });
          s.once('error', (e) => {
            clearTimeout(t);
            s.destroy();
            reject(e);
          });
        });
        const c = new StoreClient(sock, host, port, opts.rank, opts.worldSize, opts.timeoutMs ?? defaultTimeoutMs());
        if (opts.rank !== undefined) await c.request(Op.HELLO, 0, [enc(String(opts.rank))]);
        return c;
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        last = `${err.code ?? ''} ${err.message}`.trim();
        const retryable = err.code === 'ECONNREFUSED' || err.code === 'ECONNRESET' || err.code === 'ETIMEDOUT';
        if (!retryable || Date.now() >= deadline) {
          throw new Error(
            `cannot reach the rendezvous store (master) at ${host}:${port}: ${last}` +
              (retryable ? ` (kept retrying for ${Math.round(connectTimeout / 1000)} s)` : '') +
              '. Check MASTER_ADDR / MASTER_PORT (--master_addr / --master_port) and that rank 0 or the launcher on the master node is running.',
          );
        }
        await sleep(100);
      }
    }
  }

  private fail(e: Error): void {
    if (this.lost) return;
    this.lost = e;
    for (const p of this.pending.splice(0)) p.reject(e);
  }

  private request(op: number, timeoutMs: number, fields: Uint8Array[]): Promise<{ code: number; fields: Buffer[] }> {
    if (this.lost) return Promise.reject(this.lost);
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.sock.write(encodeFrame([op, timeoutMs], fields));
    });
  }

  private static bytes(v: string | Uint8Array): Uint8Array {
    return typeof v === 'string' ? enc(v) : v;
  }

  async set(key: string, value: string | Uint8Array): Promise<void> {
    await this.request(Op.SET, 0, [enc(key), StoreClient.bytes(value)]);
  }

  /** Waits (up to timeoutMs) for the key and returns its bytes. */
  async get(key: string, timeoutMs = this.timeoutMs): Promise<Buffer> {
    const r = await this.request(Op.GET, timeoutMs, [enc(key)]);
    this.ensure(r, `get('${key}')`, timeoutMs);
    return r.fields[0];
  }

  async wait(keys: string[], timeoutMs = this.timeoutMs): Promise<void> {
    const r = await this.request(Op.WAIT, timeoutMs, keys.map(enc));
    this.ensure(r, `wait(${keys.join(', ')})`, timeoutMs);
  }

  /** True when every key exists (does not wait). */
  async check(keys: string[]): Promise<boolean> {
    const r = await this.request(Op.CHECK, 0, keys.map(enc));
    return r.fields[0].toString() === '1';
  }

  /** Atomically adds delta to the integer at key (missing = 0) and returns the new value. */
  async add(key: string, delta: number): Promise<number> {
    const r = await this.request(Op.ADD, 0, [enc(key), enc(String(delta))]);
    return Number(r.fields[0].toString());
  }

  async delete(key: string): Promise<boolean> {
    const r = await this.request(Op.DELETE, 0, [enc(key)]);
    return r.fields[0].toString() === '1';
  }

  /** Messages about ranks whose connection dropped without a clean close(). */
  async deadRanks(): Promise<string[]> {
    const r = await this.request(Op.DEAD, 0, []);
    return r.fields.map((f) => f.toString());
  }

  /**
   * Blocks until all worldSize ranks have called barrier(name) the same number
   * of times. On timeout the error names the ranks that did not arrive; a rank
   * that died is reported immediately.
   */
  async barrier(name = 'default', timeoutMs = this.timeoutMs): Promise<void> {
    if (this.rank === undefined || this.worldSize === undefined)
      throw new Error('rendezvous store: barrier() needs a client created with rank and worldSize');
    const gen = (this.barrierGen.get(name) ?? 0) + 1;
    this.barrierGen.set(name, gen);
    const prefix = `__barrier/${name}/${gen}/rank`;
    await this.set(prefix + this.rank, '1');
    const keys = Array.from({ length: this.worldSize }, (_, r) => prefix + r);
    const r = await this.request(Op.WAIT, timeoutMs, keys.map(enc));
    if (r.code === Status.TIMEOUT) {
      const missing = r.fields.map((f) => rankOfKey(f.toString())).filter((x) => x !== undefined);
      throw new Error(
        `barrier '${name}' timed out after ${timeoutMs / 1000} s on rank ${this.rank}: ` +
          `rank(s) ${missing.join(', ')} of ${this.worldSize} did not arrive (hung, crashed or still busy; see their output)`,
      );
    }
    this.ensure(r, `barrier '${name}'`, timeoutMs);
  }

  /** Closes cleanly (the server does not report this rank as dead). */
  async close(): Promise<void> {
    if (!this.lost) {
      try {
        await this.request(Op.BYE, 0, []);
      } catch {
        /* already gone */
      }
    }
    this.lost ??= new Error('rendezvous store client is closed');
    this.sock.end();
    this.sock.destroy();
  }

  private ensure(r: { code: number; fields: Buffer[] }, what: string, timeoutMs: number): void {
    if (r.code === Status.OK) return;
    if (r.code === Status.TIMEOUT)
      throw new Error(
        `rendezvous store ${what} timed out after ${timeoutMs / 1000} s: still missing ${r.fields.map(String).join(', ')}`,
      );
    throw new Error(`rendezvous store ${what} failed on rank ${this.rank ?? '?'}: ${r.fields[0]?.toString()}`);
  }
}
