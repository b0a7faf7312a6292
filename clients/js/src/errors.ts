/**
 * Server error codes Herald answers (see docs/protocol.md, docs/inbox.md and docs/chat.md).
 * Codes below 100 come from the `centrifuge` SDK itself (timeout, transport closed, ...).
 */
export const ErrorCode = {
  /** SDK: the call timed out. */
  Timeout: 1,
  /** SDK: the transport closed while the call was in flight. */
  TransportClosed: 2,
  /** SDK: the client is disconnected (and not reconnecting). */
  ClientDisconnected: 3,
  /** SDK: the client was closed. */
  ClientClosed: 4,
  /** SDK: the subscription is unsubscribed. */
  SubscriptionUnsubscribed: 7,
  /** SDK: a write to the transport failed. */
  TransportWriteError: 10,
  /** SDK: the connection closed. */
  ConnectionClosed: 11,
  /** Server: internal error; `temporary: true` means retry. */
  Internal: 100,
  /** Server: unauthorized. */
  Unauthorized: 101,
  /** Server: unknown channel, or an unknown conversation. */
  UnknownChannel: 102,
  /** Server: permission denied (not a member, anonymous connection, ...). */
  PermissionDenied: 103,
  /** Server: unknown method. */
  MethodNotFound: 104,
  /** Server: already subscribed. */
  AlreadySubscribed: 105,
  /** Server: limit exceeded. */
  LimitExceeded: 106,
  /** Server: bad request; the reason is in `message`. */
  BadRequest: 107,
  /** Server: not available (the inbox or chat is switched off). */
  NotAvailable: 108,
  /** Server: token expired. */
  TokenExpired: 109,
} as const;

/** The shape of an error the `centrifuge` SDK rejects with. */
interface RawError {
  code?: unknown;
  message?: unknown;
  temporary?: unknown;
}

/** An error answered by Herald (or raised by the SDK on the way), with its numeric code. */
export class HeraldError extends Error {
  override readonly name = 'HeraldError';
  /** The protocol error code: 100+ from the server, below 100 from the SDK. */
  readonly code: number;
  /** True when the server says the call may succeed if retried. */
  readonly temporary: boolean;

  constructor(code: number, message: string, temporary = false) {
    super(message);
    this.code = code;
    this.temporary = temporary;
    Object.setPrototypeOf(this, new.target.prototype);
  }

  /** Converts whatever an SDK call rejected with into a HeraldError. */
  static from(err: unknown): HeraldError {
    if (err instanceof HeraldError) return err;
    if (err !== null && typeof err === 'object') {
      const raw = err as RawError;
      if (typeof raw.code === 'number') {
        return new HeraldError(raw.code, typeof raw.message === 'string' ? raw.message : '', raw.temporary === true);
      }
      if (err instanceof Error) return new HeraldError(0, err.message);
    }
    return new HeraldError(0, String(err));
  }

  /**
   * True when retrying the same call could succeed: a temporary server error or a
   * transport-level failure (timeout, closed transport) rather than a refusal.
   */
  get retryable(): boolean {
    if (this.temporary) return true;
    const transient: number[] = [
      ErrorCode.Timeout,
      ErrorCode.TransportClosed,
      ErrorCode.TransportWriteError,
      ErrorCode.ConnectionClosed,
    ];
    return transient.includes(this.code);
  }
}

/** The subset of a `Centrifuge` client the helpers call rpc on. */
export interface RpcClient {
  rpc(method: string, data: unknown): Promise<{ data: unknown }>;
}

/** Calls `method` over the SDK's rpc and answers its data; rejects with a HeraldError. */
export async function call<T>(client: RpcClient, method: string, data: unknown): Promise<T> {
  try {
    const reply = await client.rpc(method, data);
    return reply.data as T;
  } catch (err) {
    throw HeraldError.from(err);
  }
}
