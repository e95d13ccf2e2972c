// Scatter-gather on the client: a call too large for one request is cut into contiguous parts that go through the
// host pool in parallel (each part balanced and failed over like any request) and are gathered in the original
// order. For pools of independent hosts, or services that refuse large requests (the seed caps a request at 100
// texts); an OrleansGpu front splits large requests across its own cluster.

import { ServiceError, TooLargeError, type HostPool } from "./client.js";

/** A call that can be cut between items: an item is a text, or a candidate with its references. */
export interface SplittableCall<R> {
  path: string;
  items: number;
  /** Inputs item i holds, as a host counts them against its limit (a candidate and its references: 1 + their count). */
  weight(i: number): number;
  /** Bytes item i adds to a request body. */
  bytes(i: number): number;
  /** Bytes of a request body without any item. */
  overheadBytes: number;
  /** The request body for items [from, to). */
  body(from: number, to: number): unknown;
  /** Results in an answer: one per item, or the parts would not line up. */
  count(answer: R): number;
  /** One answer from the answers of consecutive parts, in order. */
  merge(parts: R[]): R;
  /** Names item i for a message: "texts[3]". */
  label(i: number): string;
  /** Why this call must go as one request, if it must (a split would change its results). */
  whole?: string;
}

export interface Part {
  host: string;
  from: number;
  to: number;
}

export interface Gathered<R> {
  data: R;
  /** The requests that answered, in item order: one, unless the call was split. */
  parts: Part[];
  /** Why the call was split (the first host's refusal, or the body size); undefined when it went whole. */
  splitBecause?: string;
}

/** Parts in flight per host: the seed's default GPU_MAX_CONCURRENT, so parts queue on the hosts rather than crowd them. */
const PARTS_PER_HOST = 2;

/**
 * Sends the call whole if its body fits `maxRequestBytes`, else in parts that do. A part a host refuses for its size
 * is cut again: into even parts within the limit the host named, or in half, down to one item, which is then
 * reported as too large.
 * The first part that fails for any other reason fails the call and cancels the others.
 */
export async function scatterGather<R>(pool: HostPool, call: SplittableCall<R>, options: { maxRequestBytes: number; signal?: AbortSignal }): Promise<Gathered<R>> {
  for (let i = 0; i < call.items; i++) {
    const size = call.overheadBytes + call.bytes(i);
    if (size > options.maxRequestBytes) {
      throw new ServiceError(
        `${call.label(i)} alone makes a request body of ${size} bytes, over the ${options.maxRequestBytes} bytes a request may carry (limits.maxRequestBytes; raise it with the hosts' GPU_MAX_BODY_BYTES)`,
        413,
        "plugin",
      );
    }
  }

  const all: Range = { from: 0, to: call.items };
  const first = partition(call, all, Infinity, options.maxRequestBytes);
  let splitBecause: string | undefined;
  if (first.length > 1) {
    const total = call.overheadBytes + sum(all, (i) => call.bytes(i));
    splitBecause = `its body of ${total} bytes is over limits.maxRequestBytes (${options.maxRequestBytes})`;
    if (call.whole) {
      throw new ServiceError(`the call is too large for one request (${splitBecause}) and cannot be split: ${call.whole}`, 413, "plugin");
    }
  }

  const cancel = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, cancel.signal]) : cancel.signal;
  const slots = new Slots(Math.max(PARTS_PER_HOST, pool.hosts.length * PARTS_PER_HOST));
  const answered: Array<Part & { data: R }> = [];

  const send = async (range: Range): Promise<void> => {
    try {
      const answer = await slots.run(() => pool.request<R>(call.path, { body: call.body(range.from, range.to), signal }));
      const results = call.count(answer.data);
      if (results !== range.to - range.from) {
        throw new Error(`${answer.host} answered ${results} result(s) for ${range.to - range.from} item(s)`);
      }
      answered.push({ ...range, host: answer.host, data: answer.data });
    } catch (error) {
      if (!(error instanceof TooLargeError)) {
        throw error;
      }
      if (range.to - range.from === 1) {
        throw new ServiceError(`${call.label(range.from)} alone is too large for a request: ${error.message}`, error.status, error.host);
      }
      if (call.whole) {
        throw new ServiceError(`${error.message}; the call cannot be split: ${call.whole}`, error.status, error.host);
      }
      splitBecause ??= error.message;
      // As many parts as the host's named limit needs (at least two), of even size so that the hosts share the work.
      const weight = sum(range, (i) => call.weight(i));
      const parts = Math.max(2, error.maxItems === undefined ? 2 : Math.ceil(weight / error.maxItems));
      await Promise.all(partition(call, range, Math.ceil(weight / parts), options.maxRequestBytes).map(send));
    }
  };

  try {
    await Promise.all(first.map(send));
  } catch (error) {
    cancel.abort();
    throw error;
  }

  answered.sort((a, b) => a.from - b.from);
  return {
    data: call.merge(answered.map((a) => a.data)),
    parts: answered.map(({ host, from, to }) => ({ host, from, to })),
    splitBecause,
  };
}

interface Range {
  from: number;
  to: number;
}

function sum(range: Range, of: (i: number) => number): number {
  let total = 0;
  for (let i = range.from; i < range.to; i++) total += of(i);
  return total;
}

/**
 * Consecutive parts of `range`, each within `maxWeight` inputs and `maxBytes` of body; an item over either limit on
 * its own makes a part alone. With maxWeight below the range's weight, every part holds fewer items than the range.
 */
function partition<R>(call: SplittableCall<R>, range: Range, maxWeight: number, maxBytes: number): Range[] {
  const parts: Range[] = [];
  let from = range.from;
  let weight = 0;
  let bytes = call.overheadBytes;
  for (let i = range.from; i < range.to; i++) {
    const w = call.weight(i);
    const b = call.bytes(i);
    if (i > from && (weight + w > maxWeight || bytes + b > maxBytes)) {
      parts.push({ from, to: i });
      from = i;
      weight = 0;
      bytes = call.overheadBytes;
    }
    weight += w;
    bytes += b;
  }
  parts.push({ from, to: range.to });
  return parts;
}

/**
 * At most `size` tasks at once; the newest waiting task starts first, so a part refused again is cut further before
 * its siblings are sent, and a call that cannot fit fails after a few requests rather than after every level.
 */
class Slots {
  private free: number;
  private readonly waiting: Array<() => void> = [];

  constructor(size: number) {
    this.free = size;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.free > 0) {
      this.free--;
    } else {
      await new Promise<void>((start) => this.waiting.push(start));
    }
    try {
      return await task();
    } finally {
      const next = this.waiting.pop();
      if (next) {
        next();
      } else {
        this.free++;
      }
    }
  }
}
