import type { KeyRuntimeLog } from '../keys/key-runtime.js';
import type { AuditEntry } from '../keys/key-service.js';
import type { Logger } from './logger.js';

/** The key runtime's audit lines (info, `type: "audit"`) and warnings on the process's logger. */
export function loggerKeyRuntimeLog(logger: Logger): KeyRuntimeLog {
  return {
    audit: (entry) => logger.info({ type: 'audit', ...auditFields(entry) }, 'audit'),
    warn: (fields, message) => logger.warn(fields, message),
    error: (fields, message) => logger.error(fields, message),
  };
}

function auditFields(entry: AuditEntry) {
  const actor =
    entry.actor.kind === 'key'
      ? {
          actor: entry.actor.account,
          actor_key_id: entry.actor.keyId,
          request_id: entry.actor.requestId,
        }
      : { actor: `cli:${entry.actor.user}` };
  return {
    ...actor,
    action: entry.action,
    target: entry.target,
    result: entry.result,
    error: entry.error,
    key_id: entry.details?.keyId,
    replaced_key_id: entry.details?.replacedKeyId,
  };
}
