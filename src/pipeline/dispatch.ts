import type { IncomingMessage, ServerResponse } from 'node:http';
import { serveAdmin } from '../admin/admin-target.js';
import { type AuthzAnswerConfig, answerAllow } from '../authz/authz-target.js';
import { type ForwardDeps, forwardRequest } from '../forward/forward-request.js';
import type { UpstreamCancel } from '../forward/upstream-cancel.js';
import type { KeyService } from '../keys/key-service.js';
import type { Admission } from './admission.js';
import type { Dispatched } from './outcome.js';
import { asKeygateError } from './send-error.js';

export interface DispatchDeps extends ForwardDeps {
  keys: KeyService;
  /** How an allowed authz question is answered (identity header names, cache TTL). */
  authzAnswer: AuthzAnswerConfig;
}

const ANSWERED: Dispatched = {
  error: undefined,
  upstreamFailed: false,
  upstreamStatus: undefined,
  upstreamMs: undefined,
};

/** Gives the forward target a cancel signal that fires when the client goes away. */
export interface UpstreamAbort {
  upstreamAbort(): UpstreamCancel;
}

/** The second stage: hands an admitted request to its target and reports what that came to. */
export async function dispatch(
  deps: DispatchDeps,
  admission: Admission,
  req: IncomingMessage,
  res: ServerResponse,
  requestId: string,
  remoteAddress: string,
  abort: UpstreamAbort,
): Promise<Dispatched> {
  const target = admission.target;
  switch (target.kind) {
    case 'forward':
      return forwardRequest(deps, {
        req,
        res,
        target,
        principal: admission.principal,
        requestId,
        remoteAddress,
        hasBody: admission.hasBody,
        expectsContinue: admission.expectsContinue,
        abort: abort.upstreamAbort(),
      });
    case 'admin':
      try {
        await serveAdmin(
          req,
          res,
          target,
          admission.principal,
          deps.keys,
          requestId,
          admission.expectsContinue,
        );
        return ANSWERED;
      } catch (err) {
        return { ...ANSWERED, error: asKeygateError(err) };
      }
    case 'authz':
      // Nothing is forwarded and no body is read: Node discards one the data plane sent.
      answerAllow(res, deps.authzAnswer, admission.principal, requestId);
      return ANSWERED;
    default:
      return unreachable(target);
  }
}

function unreachable(target: never): never {
  throw new Error(`unknown target ${JSON.stringify(target)}`);
}
