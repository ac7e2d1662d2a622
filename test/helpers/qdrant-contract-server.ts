/**
 * A Qdrant REST server for contract tests, built from Qdrant's documented requests and
 * responses, because no live Qdrant is reachable from this machine or CI. It checks every
 * request against the documented request body of its endpoint (a request the docs would
 * not accept gets Qdrant's documented 400/404 envelope, and is recorded as a violation),
 * keeps points in memory and answers with the documented response envelopes:
 *
 *   every answer          { result, status: "ok", time }, errors { status: { error }, time }
 *   PUT    /collections/{c}                 body { vectors: { size, distance } } -> result true
 *     https://api.qdrant.tech/v-1-15-x/api-reference/collections/create-collection
 *   GET    /collections/{c}                 -> result CollectionInfo { status, optimizer_status,
 *                                            segments_count, points_count, config.params.vectors }
 *     https://api.qdrant.tech/v-1-15-x/api-reference/collections/get-collection
 *     A missing collection answers 404 {"status":{"error":"Not found: Collection `c` doesn't exist!"},"time":...}
 *     (the body Qdrant sends, as captured in public bug reports and client tests).
 *   PUT    /collections/{c}/index           body { field_name, field_schema } -> UpdateResult
 *     https://api.qdrant.tech/v-1-15-x/api-reference/indexes/create-field-index
 *   PUT    /collections/{c}/points          body { points: [{ id, vector, payload }] } -> UpdateResult
 *     https://api.qdrant.tech/v-1-15-x/api-reference/points/upsert-points
 *   POST   /collections/{c}/points/delete   body { points } or { filter } -> UpdateResult
 *     https://api.qdrant.tech/v-1-15-x/api-reference/points/delete-points
 *   POST   /collections/{c}/points/count    body { filter?, exact? } -> result { count }
 *     https://api.qdrant.tech/v-1-15-x/api-reference/points/count-points
 *   POST   /collections/{c}/points/scroll   body { filter?, limit?, offset?, with_payload?, with_vector? }
 *                                            -> result { points: [{ id, payload }], next_page_offset }
 *     https://api.qdrant.tech/v-1-15-x/api-reference/points/scroll-points
 *   POST   /collections/{c}/points/search   body { vector, limit, with_payload? } -> result [ScoredPoint]
 *                                            ScoredPoint { id, version, score, payload }
 *     https://api.qdrant.tech/v-1-15-x/api-reference/search/points
 *
 * UpdateResult is { operation_id, status: "acknowledged" | "completed" }: "completed" with
 * ?wait=true. Ids are unsigned integers or UUIDs (ExtendedPointId). Cosine collections
 * normalise vectors on upsert, so scores are dot products of unit vectors (the collections
 * page: "Cosine similarity"). Filters: `must` of `{ key, match: { value } }` only, which
 * is all qdrant-store.mjs sends.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const DISTANCES = ['Cosine', 'Euclid', 'Dot', 'Manhattan'];
const FIELD_SCHEMAS = ['keyword', 'integer', 'float', 'bool', 'geo', 'datetime', 'text', 'uuid'];

type Payload = Record<string, unknown>;
interface Point {
  id: string | number;
  vector: number[];
  payload: Payload;
  version: number;
}
interface Collection {
  size: number;
  distance: string;
  points: Map<string, Point>;
  indexes: Map<string, string>;
}
export interface RecordedRequest {
  method: string;
  path: string;
  query: string;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
  status: number;
}

export interface QdrantContractServer {
  url: string;
  requests: RecordedRequest[];
  /** Requests the docs would refuse: each a sentence naming the rule broken. */
  violations: string[];
  collections: Map<string, Collection>;
  close(): Promise<void>;
}

class Refusal extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function matches(point: Point, filter: unknown): boolean {
  if (filter === undefined || filter === null) return true;
  const must = (filter as { must?: unknown }).must;
  if (!Array.isArray(must))
    throw new Refusal(400, 'Format error in JSON body: filter.must must be a list of conditions');
  return must.every((condition) => {
    const { key, match } = condition as { key?: unknown; match?: { value?: unknown } };
    if (typeof key !== 'string' || match === undefined || !('value' in match))
      throw new Refusal(400, 'Format error in JSON body: a condition needs key and match.value');
    return point.payload[key] === match.value;
  });
}

function unit(vector: number[]): number[] {
  const norm = Math.sqrt(vector.reduce((s, x) => s + x * x, 0));
  return norm > 0 ? vector.map((x) => x / norm) : vector;
}

export async function startQdrantContractServer(
  options: { apiKey?: string } = {},
): Promise<QdrantContractServer> {
  const collections = new Map<string, Collection>();
  const requests: RecordedRequest[] = [];
  const violations: string[] = [];
  let operation = 0;
  const started = process.hrtime.bigint();
  const time = () => Number(process.hrtime.bigint() - started) / 1e9 / 1e6;

  const handle = (method: string, path: string, query: URLSearchParams, body: unknown): unknown => {
    const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    if (parts[0] !== 'collections' || parts[1] === undefined) throw new Refusal(404, `Not found: ${path}`);
    const name = parts[1];
    const rest = parts.slice(2).join('/');
    const collection = collections.get(name);
    const need = (): Collection => {
      if (!collection) throw new Refusal(404, `Not found: Collection \`${name}\` doesn't exist!`);
      return collection;
    };
    const object = (): Record<string, unknown> => {
      if (body === null || typeof body !== 'object' || Array.isArray(body))
        throw new Refusal(400, 'Format error in JSON body: expected an object');
      return body as Record<string, unknown>;
    };
    const update = () => ({
      operation_id: operation++,
      status: query.get('wait') === 'true' ? 'completed' : 'acknowledged',
    });

    if (rest === '' && method === 'GET') {
      const c = need();
      return {
        status: 'green',
        optimizer_status: 'ok',
        segments_count: 1,
        points_count: c.points.size,
        indexed_vectors_count: 0,
        config: {
          params: {
            vectors: { size: c.size, distance: c.distance },
            shard_number: 1,
            replication_factor: 1,
            write_consistency_factor: 1,
            on_disk_payload: true,
          },
        },
        payload_schema: Object.fromEntries(
          [...c.indexes].map(([field, type]) => [field, { data_type: type, points: c.points.size }]),
        ),
      };
    }
    if (rest === '' && method === 'PUT') {
      const vectors = object().vectors as { size?: unknown; distance?: unknown } | undefined;
      if (
        !vectors ||
        !Number.isInteger(vectors.size) ||
        (vectors.size as number) < 1 ||
        !DISTANCES.includes(vectors.distance as string)
      )
        throw new Refusal(
          400,
          'Format error in JSON body: vectors needs size (integer >= 1) and distance (Cosine, Euclid, Dot, Manhattan)',
        );
      if (collection) throw new Refusal(400, `Wrong input: Collection \`${name}\` already exists!`);
      collections.set(name, {
        size: vectors.size as number,
        distance: vectors.distance as string,
        points: new Map(),
        indexes: new Map(),
      });
      return true;
    }
    if (rest === 'index' && method === 'PUT') {
      const c = need();
      const { field_name, field_schema } = object();
      if (typeof field_name !== 'string' || !FIELD_SCHEMAS.includes(field_schema as string))
        throw new Refusal(400, 'Format error in JSON body: field_name and a field_schema type are required');
      c.indexes.set(field_name, field_schema as string);
      return update();
    }
    if (rest === 'points' && method === 'PUT') {
      const c = need();
      const points = object().points;
      if (!Array.isArray(points)) throw new Refusal(400, 'Format error in JSON body: missing field `points`');
      for (const p of points as Array<{ id?: unknown; vector?: unknown; payload?: unknown }>) {
        const idOk =
          (Number.isInteger(p.id) && (p.id as number) >= 0) || (typeof p.id === 'string' && UUID.test(p.id));
        if (!idOk)
          throw new Refusal(
            400,
            `Format error in JSON body: value ${JSON.stringify(p.id)} is not a valid point ID, valid values are either an unsigned integer or a UUID`,
          );
        if (!Array.isArray(p.vector) || !p.vector.every((x) => typeof x === 'number' && Number.isFinite(x)))
          throw new Refusal(400, 'Format error in JSON body: vector must be a list of numbers');
        if (p.vector.length !== c.size)
          throw new Refusal(
            400,
            `Wrong input: Vector dimension error: expected dim: ${c.size}, got ${p.vector.length}`,
          );
        if (p.payload !== undefined && (p.payload === null || typeof p.payload !== 'object'))
          throw new Refusal(400, 'Format error in JSON body: payload must be an object');
      }
      for (const p of points as Array<{ id: string | number; vector: number[]; payload?: Payload }>) {
        const vector = c.distance === 'Cosine' ? unit(p.vector) : p.vector;
        c.points.set(String(p.id), { id: p.id, vector, payload: p.payload ?? {}, version: operation });
      }
      return update();
    }
    if (rest === 'points/delete' && method === 'POST') {
      const c = need();
      const b = object();
      if (Array.isArray(b.points)) for (const id of b.points) c.points.delete(String(id));
      else if (b.filter !== undefined) {
        for (const [key, point] of c.points) if (matches(point, b.filter)) c.points.delete(key);
      } else throw new Refusal(400, 'Format error in JSON body: expected points or filter');
      return update();
    }
    if (rest === 'points/count' && method === 'POST') {
      const c = need();
      const { filter } = object();
      return { count: [...c.points.values()].filter((p) => matches(p, filter)).length };
    }
    if (rest === 'points/scroll' && method === 'POST') {
      const c = need();
      const b = object();
      const limit = b.limit === undefined ? 10 : (b.limit as number);
      if (!Number.isInteger(limit) || limit < 1)
        throw new Refusal(400, 'Format error in JSON body: limit must be a positive integer');
      // Sorted by id, as documented; the offset is the first id of the page.
      const sorted = [...c.points.values()]
        .filter((p) => matches(p, b.filter))
        .sort((x, y) => (String(x.id) < String(y.id) ? -1 : 1));
      const start =
        b.offset === undefined || b.offset === null
          ? 0
          : sorted.findIndex((p) => String(p.id) >= String(b.offset));
      const page = start < 0 ? [] : sorted.slice(start, start + limit);
      const next = start < 0 ? undefined : sorted[start + limit];
      return {
        points: page.map((p) => ({
          id: p.id,
          payload: b.with_payload === false ? null : p.payload,
          vector: b.with_vector ? p.vector : null,
        })),
        next_page_offset: next ? next.id : null,
      };
    }
    if (rest === 'points/search' && method === 'POST') {
      const c = need();
      const b = object();
      if (!Array.isArray(b.vector))
        throw new Refusal(400, 'Format error in JSON body: missing field `vector`');
      if (!Number.isInteger(b.limit))
        throw new Refusal(400, 'Format error in JSON body: missing field `limit`');
      if ((b.vector as number[]).length !== c.size)
        throw new Refusal(
          400,
          `Wrong input: Vector dimension error: expected dim: ${c.size}, got ${(b.vector as number[]).length}`,
        );
      const q = unit(b.vector as number[]);
      return [...c.points.values()]
        .filter((p) => matches(p, b.filter))
        .map((p) => ({ p, score: p.vector.reduce((s, x, i) => s + x * (q[i] as number), 0) }))
        .sort((x, y) => y.score - x.score)
        .slice(0, b.limit as number)
        .map(({ p, score }) => ({
          id: p.id,
          version: p.version,
          score,
          payload: b.with_payload ? p.payload : null,
          vector: null,
        }));
    }
    throw new Refusal(404, `Not found: ${method} ${path}`);
  };

  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://qdrant');
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown = null;
      let status = 200;
      let answer: unknown;
      try {
        if (options.apiKey !== undefined && req.headers['api-key'] !== options.apiKey)
          throw new Refusal(401, 'Must provide an API key or an Authorization bearer token');
        if (text !== '') {
          if (!String(req.headers['content-type']).startsWith('application/json'))
            throw new Refusal(400, 'Content-Type must be application/json');
          body = JSON.parse(text);
        }
        answer = {
          result: handle(req.method ?? 'GET', url.pathname, url.searchParams, body),
          status: 'ok',
          time: time(),
        };
      } catch (error) {
        status = error instanceof Refusal ? error.status : 400;
        answer = { status: { error: (error as Error).message }, time: time() };
        // A missing collection is a state the client checks for; anything else is a request the docs refuse.
        if (!(status === 404 && /doesn't exist/.test((error as Error).message)))
          violations.push(`${req.method} ${url.pathname}: ${(error as Error).message}`);
      }
      requests.push({
        method: req.method ?? '',
        path: url.pathname,
        query: url.search,
        headers: req.headers,
        body,
        status,
      });
      const out = Buffer.from(JSON.stringify(answer));
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': out.length });
      res.end(out);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    violations,
    collections,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
