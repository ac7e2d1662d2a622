import { verifyAuditLogOnHost } from '../../audit/audit-verify.js';
import type { Transport } from '../../host/transport.js';
import { hostLayout } from '../../target/layout.js';
import { attempt, type ServiceCheck } from '../service-check.js';
import { ragDataPaths } from './rag-service.js';
import type { RagServiceSpec } from './spec.js';

/**
 * The RAG service's audit log verifies as one unbroken chain holding verification's
 * requests, and reaches its last checkpoint signed by the host's key.
 */
export async function verifyAuditLog(
  transport: Transport,
  root: string,
  service: RagServiceSpec,
  signal?: AbortSignal,
): Promise<ServiceCheck> {
  return verifyServiceLog(transport, root, service.name, ragDataPaths(root).auditLog, signal);
}

/** A service's hash-chained log (the RAG audit log, the gateway's access log) verifies to its signed checkpoint. */
export async function verifyServiceLog(
  transport: Transport,
  root: string,
  service: string,
  logPath: string,
  signal?: AbortSignal,
): Promise<ServiceCheck> {
  return attempt('verify.audit', service, async () => {
    const result = await verifyAuditLogOnHost(transport, logPath, {
      ...(signal ? { signal } : {}),
      checkpoints: { hostPublicKeyPath: hostLayout(root).hostPublicKey },
    });
    if (!result.ok && result.firstBroken === undefined) {
      return {
        status: 'fail',
        detail: `${logPath}: ${result.checkpoints?.detail ?? 'its checkpoints do not verify'}`,
      };
    }
    if (!result.ok) {
      const broken = result.firstBroken;
      return {
        status: 'fail',
        detail: `${logPath}: record ${broken?.seq ?? '?'} breaks the chain (${broken?.reason ?? 'unknown'}: ${broken?.detail ?? ''})`,
      };
    }
    if (result.records === 0)
      return { status: 'fail', detail: `${logPath} holds no record of verification's requests` };
    return {
      status: 'ok',
      detail: `${result.records} records chain to seq ${result.lastSeq}`,
      metrics: { records: result.records, bytes: result.bytes },
    };
  });
}
