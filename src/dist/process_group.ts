// Process groups: the collectives distributed training needs (all-reduce,
// broadcast, all-gather, barrier) and the bucketed gradient reducer, over
// Gloo (CPU processes) or NCCL (GPUs) from the native core. Both engines do
// the actual communication; this module does the rendezvous (through the
// store), turns typed arrays into tensors and back, and makes failures name
// the rank at fault.
import dgram from 'node:dgram';
import type { RetinaNet } from '../model/retinanet.js';
import { native } from '../native.js';
import { Tensor } from '../tensor.js';
import { readDistEnv, type DistEnv } from './env.js';
import { StoreClient, StoreServer, defaultTimeoutMs } from './store.js';

export type DistBackend = 'gloo' | 'nccl';
export type ReduceOp = 'sum' | 'avg' | 'max' | 'min';
/** Typed arrays are reduced in place (copied through a tensor); Tensors are reduced in place without copies. */
export type Reducible = Tensor | Float32Array | Float64Array | Int32Array | BigInt64Array;

export interface DistInfo {
  /** Built against Gloo (libgloo-dev found at build time): multi-process CPU training available. */
  glooCompiled: boolean;
  /** CUDA build: the NCCL backend is available when libnccl.so.2 can be loaded at run time. */
  ncclCompiled: boolean;
}

export function distInfo(): DistInfo {
  return native.distInfo() as DistInfo;
}

export interface InitProcessGroupOptions {
  backend: DistBackend;
  /** Defaults from the environment (readDistEnv()). */
  rank?: number;
  worldSize?: number;
  /** CUDA device for NCCL; default LOCAL_RANK. */
  device?: number;
  /** An existing store client (created with rank and worldSize); by default one is connected (and hosted by rank 0 if needed). */
  store?: StoreClient;
  /** Timeout of the rendezvous, of barriers and of each collective. Default: DETSEG3D_DIST_TIMEOUT or 30 min. */
  timeoutMs?: number;
  /** How long to keep trying to reach the master. Default 60 s. */
  connectTimeoutMs?: number;
  env?: DistEnv;
}

let groupCounter = 0;

function isLoopback(addr: string): boolean {
  return addr === 'localhost' || addr === '::1' || addr.startsWith('127.');
}

/** The local address the kernel would use to reach `host` (for Gloo's listening socket). */
function localAddressTowards(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    s.on('error', () => {
      s.close();
      resolve('');
    });
    s.connect(port, host, () => {
      const a = s.address().address;
      s.close();
      resolve(a);
    });
  });
}

function glooAddressing(env: DistEnv): Promise<{ hostname?: string; iface?: string }> {
  if (process.env.GLOO_SOCKET_IFNAME) return Promise.resolve({ iface: process.env.GLOO_SOCKET_IFNAME });
  if (process.env.DETSEG3D_GLOO_HOSTNAME) return Promise.resolve({ hostname: process.env.DETSEG3D_GLOO_HOSTNAME });
  if (isLoopback(env.masterAddr)) return Promise.resolve({ hostname: '127.0.0.1' });
  return localAddressTowards(env.masterAddr, env.storePort).then((a) => (a ? { hostname: a } : {}));
}

/**
 * Joins the process group: every rank must call it (same backend, same order
 * of groups). Rank 0 hosts the rendezvous store unless a launcher already
 * does. Resolves when all ranks are connected; rejects after the timeout with
 * the ranks that never arrived.
 */
export async function initProcessGroup(opts: InitProcessGroupOptions): Promise<ProcessGroup> {
  const env = opts.env ?? readDistEnv();
  const rank = opts.rank ?? env.rank;
  const worldSize = opts.worldSize ?? env.worldSize;
  const timeoutMs = opts.timeoutMs ?? defaultTimeoutMs();
  if (!(worldSize >= 1 && rank >= 0 && rank < worldSize))
    throw new Error(`initProcessGroup: rank ${rank} is not in [0, world size ${worldSize})`);
  const info = distInfo();
  if (opts.backend === 'gloo' && !info.glooCompiled && worldSize > 1)
    throw new Error(
      `detseg3d was built without Gloo, so ${worldSize} CPU processes cannot train together (backend 'gloo'). ` +
        'Install Gloo\'s development files (Debian/Ubuntu: `apt-get install libgloo-dev`) and rebuild (`npm run build`); ' +
        '`detseg3d info` then reports gloo: yes. One process needs no Gloo.',
    );
  if (opts.backend === 'nccl' && !info.ncclCompiled) native.ncclUniqueId();
  if (opts.backend !== 'gloo' && opts.backend !== 'nccl')
    throw new Error(`initProcessGroup: unknown backend '${String(opts.backend)}' (use 'gloo' or 'nccl')`);

  let server: StoreServer | undefined;
  let store = opts.store;
  if (!store) {
    if (worldSize === 1) {
      // A private store on a free loopback port: nothing to meet, but one code path.
      server = await StoreServer.listen(0, '127.0.0.1');
      store = await StoreClient.connect('127.0.0.1', server.port, { rank, worldSize, timeoutMs });
    } else {
      if (rank === 0 && !env.agentStore) server = await StoreServer.listen(env.storePort);
      store = await StoreClient.connect(env.masterAddr, env.storePort, {
        rank, worldSize, timeoutMs, connectTimeoutMs: opts.connectTimeoutMs,
      });
    }
  }
  const prefix = `pg${groupCounter++}`;
  try {
    // Arrival check through the store first: its timeout names the missing ranks.
    await store.barrier(`${prefix}/init`, timeoutMs);
    let handle: unknown;
    if (opts.backend === 'gloo') {
      const addr = await glooAddressing(env);
      handle = await native.distInitGlooAsync({
        host: store.host, port: store.port, prefix: `${prefix}/gloo/`, rank, size: worldSize, timeoutMs, ...addr,
      });
    } else {
      let id: Uint8Array;
      if (rank === 0) {
        id = native.ncclUniqueId() as Uint8Array;
        await store.set(`${prefix}/nccl_id`, id);
      } else id = new Uint8Array(await store.get(`${prefix}/nccl_id`, timeoutMs));
      handle = await native.distInitNcclAsync({ rank, size: worldSize, device: opts.device ?? env.localRank, id });
    }
    return new ProcessGroup(opts.backend, rank, worldSize, handle, store, server, !opts.store, prefix, timeoutMs);
  } catch (e) {
    if (!opts.store) await store.close().catch(() => {});
    await server?.close();
    throw e;
  }
}

function toTensor(x: Reducible): { t: Tensor; back?: () => void } {
  if (x instanceof Tensor) return { t: x };
  if (x instanceof Float32Array || x instanceof Float64Array || x instanceof Int32Array || x instanceof BigInt64Array) {
    const t = Tensor.from(x, [x.length]);
    return { t, back: () => (x as Float32Array).set(t.toArray() as Float32Array) };
  }
  throw new Error('collectives take Tensors, Float32Array, Float64Array, Int32Array or BigInt64Array');
}

export interface ReducerOptions {
  /** Bucket size in MiB (default 25, as torch DDP). */
  bucketMB?: number;
  /** Divide the sum by the world size (default true: DDP's gradient averaging). */
  average?: boolean;
  /**
   * The bucket views become the gradients (read them with views() after
   * wait()); `grads` then only give shapes and dtypes. Default false: the
   * reduced values are copied back into `grads`.
   */
  inPlace?: boolean;
  /**
   * Where the buckets live (default 'cpu'). 'cuda:i' (backend 'nccl' on that
   * GPU): device buckets, gradients copied in on the compute stream and
   * all-reduced on NCCL's stream behind an event, with no host
   * synchronisation; `grads` must then be on that device unless inPlace.
   */
  device?: string;
}

/** Options of ProcessGroup.createModelReducer / GradientReducer.attachModel. */
export interface ModelReducerOptions extends Omit<ReducerOptions, 'inPlace'> {
  /**
   * SyncBatchNorm (default false): in training mode the backbone's BatchNorm
   * layers normalise with the statistics of every rank's batch together
   * (torch.nn.SyncBatchNorm semantics: one all-reduce per layer in forward and
   * one in backward, running variance from the global unbiased variance).
   * CPU and CUDA models (on a GPU the per-channel sums travel through host
   * buffers, queued behind the gradient buckets already launched); no effect
   * on GroupNorm models.
   */
  syncBatchNorm?: boolean;
}

export class ProcessGroup {
  private destroyed = false;

  /** @internal use initProcessGroup */
  constructor(
    readonly backend: DistBackend,
    readonly rank: number,
    readonly worldSize: number,
    private handle: unknown,
    readonly store: StoreClient,
    private readonly server: StoreServer | undefined,
    private readonly ownsStore: boolean,
    private readonly prefix: string,
    readonly timeoutMs: number,
  ) {}

  get isMain(): boolean {
    return this.rank === 0;
  }

  private live(): unknown {
    if (this.destroyed) throw new Error('this process group has been destroyed');
    return this.handle;
  }

  /** Adds the store's knowledge of dead ranks to a failed collective's error. */
  private async explain(e: unknown): Promise<never> {
    const msg = e instanceof Error ? e.message : String(e);
    // Only a failed collective among several ranks can have a dead peer behind it.
    if (this.worldSize === 1 || !/ failed on rank /.test(msg)) throw e;
    let dead: string[] = [];
    try {
      // The dead peer's store connection may close a moment after the collective failed: ask twice.
      for (let attempt = 0; attempt < 2 && dead.length === 0; attempt++) {
        if (attempt) await new Promise((r) => setTimeout(r, 500));
        dead = await Promise.race([this.store.deadRanks(), new Promise<string[]>((r) => setTimeout(() => r([]), 2000))]);
      }
    } catch {
      /* the store itself is gone: rank 0 died */
      dead = ['the rendezvous store is unreachable, so rank 0 (or the launcher) has exited'];
    }
    throw new Error(dead.length ? `${msg}\n  cause: ${dead.join('; ')}` : msg);
  }

  /** Runs one native collective; a failure is explained (dead ranks named) before it propagates. */
  private async collective<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (e) {
      return this.explain(e);
    }
  }

  /** allReduce / broadcast: the items as tensors, one native call over all, then typed arrays get the results. */
  private async inPlace(items: Reducible | Reducible[], call: (handles: unknown[]) => Promise<unknown>): Promise<void> {
    const list = (Array.isArray(items) ? items : [items]).map(toTensor);
    await this.collective(() => call(list.map((x) => x.t.handle)));
    for (const x of list) x.back?.();
  }

  /**
   * In-place all-reduce of each item (every rank passes the same shapes in the
   * same order). With backend 'nccl', Tensors on the group's GPU are reduced
   * in device memory (no host copy); typed arrays and CPU Tensors are staged.
   */
  async allReduce(items: Reducible | Reducible[], op: ReduceOp = 'sum'): Promise<void> {
    await this.inPlace(items, (handles) => native.distAllReduceAsync(this.live(), handles, op, 0));
  }

  /**
   * True on every rank when `flag` is true on any rank. For AMP: all-reduce
   * the "found inf/nan" flag so every rank skips the same steps and the loss
   * scales stay identical.
   */
  async anyTrue(flag: boolean): Promise<boolean> {
    const v = Int32Array.of(flag ? 1 : 0);
    await this.allReduce(v, 'max');
    return v[0] === 1;
  }

  /** In place: every rank ends with root's values. */
  async broadcast(items: Reducible | Reducible[], root = 0): Promise<void> {
    await this.inPlace(items, (handles) => native.distBroadcastAsync(this.live(), handles, root, 0));
  }

  /** Each rank's bytes (any length), in rank order. */
  async allGather(bytes: Uint8Array): Promise<Uint8Array[]> {
    return this.collective(async () => (await native.distAllGatherAsync(this.live(), bytes, 0)) as Uint8Array[]);
  }

  /** allGather of JSON-serialisable values (e.g. validation predictions), in rank order. */
  async allGatherObject<T>(value: T): Promise<T[]> {
    const parts = await this.allGather(new TextEncoder().encode(JSON.stringify(value)));
    return parts.map((p) => JSON.parse(new TextDecoder().decode(p)) as T);
  }

  /** `value` of rank `root` (JSON-serialisable), on every rank. Other ranks' arguments are ignored. */
  async broadcastObject<T>(value: T, root = 0): Promise<T> {
    const mine = this.rank === root ? new TextEncoder().encode(JSON.stringify(value ?? null)) : new Uint8Array(0);
    const parts = await this.allGather(mine);
    return JSON.parse(new TextDecoder().decode(parts[root])) as T;
  }

  /**
   * Every rank ends with root's values of the model's trainable parameters
   * and/or buffers (BatchNorm running statistics), in one packed message: a
   * host buffer for a CPU model, a device buffer broadcast by NCCL for a model
   * on a GPU. Under mixed precision the 16-bit compute copies are refreshed.
   */
  async broadcastModel(model: RetinaNet, what: { params: boolean; buffers: boolean }, root = 0): Promise<void> {
    await this.collective(() => native.distBroadcastModelAsync(this.live(), model.handle, what, root));
  }

  /**
   * Benchmark helper: seconds per float32 sum all-reduce of `count` elements
   * in the backend's own memory (device memory for NCCL, so no host copies are
   * timed); median of `iters` after a warm-up. Collective.
   */
  async timeAllReduce(count: number, iters = 5): Promise<number> {
    return this.collective(async () => (await native.distTimeAllReduceAsync(this.live(), count, iters)) as number);
  }

  /** Store barrier: on timeout the error names the ranks that did not arrive. */
  async barrier(name = 'user', timeoutMs = this.timeoutMs): Promise<void> {
    this.live();
    await this.store.barrier(`${this.prefix}/${name}`, timeoutMs);
  }

  /**
   * Bucketed gradient reducer over `grads` (see native/dist/reducer.h): call
   * markReady(i) as each gradient is final during backward, then await wait().
   */
  createReducer(grads: Tensor[], opts: ReducerOptions = {}): GradientReducer {
    const h = native.distReducerCreate(this.live(), grads.map((g) => g.handle), {
      bucketBytes: Math.max(1, Math.round((opts.bucketMB ?? 25) * 1024 * 1024)),
      average: opts.average ?? true,
      inPlace: opts.inPlace ?? false,
      ...(opts.device ? { device: opts.device } : {}),
    });
    return new GradientReducer(h, (call) => this.collective(call));
  }

  /**
   * A reducer over the model's trainable parameters (registration order, so
   * buckets run from the heads back to the stem), attached to the model's
   * backward: see GradientReducer.attachModel. A model on a GPU (after
   * model.to('cuda:i'), backend 'nccl') gets device buckets on that GPU; its
   * float32 master gradients are reduced (also under mixed precision).
   */
  createModelReducer(model: RetinaNet, opts: ModelReducerOptions = {}): GradientReducer {
    const dtype = model.config.dtype;
    // Shape and dtype templates only (inPlace): the buckets are allocated on the model's device.
    const grads = model.parameters().filter((p) => p.trainable).map((p) => Tensor.zeros(p.shape, dtype));
    const { syncBatchNorm, ...reducerOpts } = opts;
    const r = this.createReducer(grads, { ...reducerOpts, inPlace: true, device: model.device });
    try {
      r.syncedBatchNormLayers = r.attachModel(model, { syncBatchNorm });
    } catch (e) {
      r.destroy();
      throw e;
    }
    return r;
  }

  /**
   * Leaves the group at once, without waiting for the other ranks (after an
   * error on this rank: the others may be blocked in a collective and would
   * never reach destroy()'s barrier). Their next collective fails.
   */
  async abort(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    native.distDestroy(this.handle);
    if (this.ownsStore) await this.store.close().catch(() => {});
    await this.server?.close();
  }

  /**
   * Leaves the group. Collective: waits for every rank (so rank 0 keeps
   * serving the store until the others are done), then closes.
   */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    try {
      if (this.worldSize > 1) await this.store.barrier(`${this.prefix}/destroy`, this.timeoutMs);
    } finally {
      this.destroyed = true;
      native.distDestroy(this.handle);
      if (this.ownsStore) await this.store.close();
      await this.server?.close();
    }
  }
}

export class GradientReducer {
  /** BatchNorm layers synchronised over the ranks (SyncBatchNorm) by the last attachModel; 0 when none. */
  syncedBatchNormLayers = 0;

  /** @internal */
  constructor(
    private handle: unknown,
    private readonly collective: (call: () => Promise<unknown>) => Promise<unknown>,
  ) {}

  /** Gradient indices per bucket, in launch order (reverse parameter order). */
  get buckets(): number[][] {
    return native.distReducerBuckets(this.handle) as number[][];
  }

  /** Per gradient, a tensor aliasing its slot in the bucket buffer (write gradients there to skip copies). */
  views(): Tensor[] {
    return (native.distReducerViews(this.handle) as unknown[]).map((h) => Tensor.wrap(h as never));
  }

  /**
   * Gradient i is final for this step; its bucket is reduced in the background
   * once complete. `value` (same shape and dtype) replaces the registered
   * gradient tensor for this step (it is copied into the bucket now).
   */
  markReady(index: number, value?: Tensor): void {
    native.distReducerMarkReady(this.handle, index, value?.handle);
  }

  /** Resolves when every bucket is reduced and copied back; re-arms for the next step. */
  async wait(): Promise<void> {
    await this.collective(() => native.distReducerWaitAsync(this.handle));
  }

  /**
   * Feeds this reducer from the model's backward (created by
   * ProcessGroup.createModelReducer): each module's gradients are marked ready
   * by native code as soon as they are final, so their buckets are
   * all-reduced while backward continues (the heads, the FPN, then the
   * backbone block by block). Then await finishModel() instead of wait().
   * With `syncBatchNorm`, the backbone's BatchNorm layers also take their
   * training statistics over all ranks (their collectives run on this
   * reducer's thread, in one order with the buckets on every rank). Returns
   * the number of synchronised BatchNorm layers (0 without syncBatchNorm or
   * with GroupNorm).
   */
  attachModel(model: RetinaNet, opts: { syncBatchNorm?: boolean } = {}): number {
    return native.distReducerAttachModel(this.handle, model.handle, { syncBatchNorm: opts.syncBatchNorm ?? false }) as number;
  }

  /** Stops feeding this reducer from the model's backward; BatchNorm is per-process again. */
  detachModel(model: RetinaNet): void {
    native.distReducerDetachModel(model.handle);
    this.syncedBatchNormLayers = 0;
  }

  /**
   * wait(), then the averaged gradients replace the model's parameter
   * gradients: copied on the CPU; on a GPU each gradient becomes its slot of
   * the bucket (no copy; the compute stream waits for the buckets'
   * collectives, the host does not).
   */
  async finishModel(model: RetinaNet): Promise<void> {
    await this.collective(() => native.distReducerFinishModelAsync(this.handle, model.handle));
  }

  destroy(): void {
    native.distReducerDestroy(this.handle);
  }
}
