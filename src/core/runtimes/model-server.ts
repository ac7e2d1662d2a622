/**
 * What the kinds that serve a model of the bundle themselves (llamacpp, vllm) share as
 * adapters: the model id they list, where the RAG service reaches them, their health path
 * and their verification.
 */
import type { Transport } from '../host/transport.js';
import type { VerifySpec } from '../layout/types.js';
import { loopbackUrlOf, type ModelEndpoint } from './adapter.js';
import { verifyModelServer } from './openai-checks.js';
import type { ServiceCheck } from './service-check.js';

/** A service that serves a model component under an id. */
export interface ServedModel {
  name: string;
  port: number;
  model: { id: string };
  embeddings: boolean;
  /** LoRA adapters served over the model, each under its own id. */
  adapters?: ReadonlyArray<{ id: string }>;
}

export const modelServerParts = {
  modelId: (service: ServedModel): string => service.model.id,
  adapterIds: (service: ServedModel): readonly string[] =>
    (service.adapters ?? []).map((adapter) => adapter.id),
  endpoint: (service: ServedModel): ModelEndpoint => ({
    url: loopbackUrlOf(service.port),
    modelId: service.model.id,
    embeddings: service.embeddings,
  }),
  healthPath: (): string => '/health',
  verify: (
    transport: Transport,
    service: ServedModel,
    spec: VerifySpec,
    signal?: AbortSignal,
  ): Promise<ServiceCheck[]> =>
    verifyModelServer(
      transport,
      {
        name: service.name,
        port: service.port,
        modelId: service.model.id,
        embeddings: service.embeddings,
        adapterIds: modelServerParts.adapterIds(service),
      },
      spec,
      signal,
    ),
};
