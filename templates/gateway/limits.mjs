// The gateway's admission limits: a token bucket per key, and a bounded number of requests
// in flight upstream with a bounded queue in front of it.
//
// The bucket holds `burst` tokens and refills at `rate` per second; a request takes one. A
// request that finds no token is refused with the seconds until one is back (Retry-After),
// and takes nothing: a client hammering the gateway does not push its own wait further out.
//
// Concurrency counts only requests whose body has been read and which wait on an upstream:
// a slow client that trickles its headers or body holds a socket, never a slot, so it
// cannot starve the others (the server's header and request timeouts end it).

/** Per-key token buckets. `now` is injectable for tests of the arithmetic. */
export function createRateLimiter({ rate, burst, now = () => performance.now() / 1000 }) {
  const buckets = new Map();
  return {
    /** {ok:true} or {ok:false, retryAfterSeconds}. */
    take(key) {
      const t = now();
      let b = buckets.get(key);
      if (b === undefined) {
        b = { tokens: burst, at: t };
        buckets.set(key, b);
      }
      b.tokens = Math.min(burst, b.tokens + (t - b.at) * rate);
      b.at = t;
      if (b.tokens >= 1) {
        b.tokens -= 1;
        return { ok: true };
      }
      return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - b.tokens) / rate)) };
    },
  };
}

export class QueueFullError extends Error {}

/** At most `limit` holders; up to `queue` more wait in order; beyond that, QueueFullError. */
export function createConcurrencyLimit({ limit, queue }) {
  let active = 0;
  const waiting = [];
  const release = () => {
    const next = waiting.shift();
    if (next !== undefined) next.resolve(once());
    else active -= 1;
  };
  const once = () => {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      release();
    };
  };
  return {
    /**
     * Resolves to a release function once a slot is free. `signal` (the client went away)
     * takes a waiting request out of the queue.
     */
    acquire(signal) {
      if (active < limit) {
        active += 1;
        return Promise.resolve(once());
      }
      if (waiting.length >= queue) return Promise.reject(new QueueFullError('the request queue is full'));
      return new Promise((resolve, reject) => {
        const entry = { resolve };
        waiting.push(entry);
        signal?.addEventListener(
          'abort',
          () => {
            const i = waiting.indexOf(entry);
            if (i !== -1) {
              waiting.splice(i, 1);
              reject(new Error('the client went away while queued'));
            }
          },
          { once: true },
        );
      });
    },
    get active() {
      return active;
    },
    get queued() {
      return waiting.length;
    },
  };
}
