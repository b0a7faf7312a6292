import type {
  Centrifuge, PublicationContext, Subscription, SubscriptionErrorContext, UnsubscribedContext,
} from 'centrifuge';

import { Emitter, attach, release } from './emitter';
import { HeraldError } from './errors';
import type { UserStatus } from './types';

/** Events of a {@link Status} and of each {@link StatusWatch}. */
export interface StatusEvents {
  /** A watched user went online or offline. */
  change: UserStatus;
  /** A watch ended (refused, or unwatch()): the user and the SDK's code and reason. */
  unwatched: { user: string; code: number; reason: string };
  /** A subscription error. */
  error: HeraldError;
}

/** Options of {@link Status.watch}. */
export interface WatchOptions {
  /** A subscription token for `status:<user>`, when the namespace does not let clients subscribe. */
  token?: string;
}

/** One watched user: its `status:<user>` subscription. */
export class StatusWatch extends Emitter<StatusEvents> {
  /** `status:<user>`. */
  readonly channel: string;
  /** The last status pushed, or `null` before the first push. */
  last: UserStatus | null = null;
  readonly subscription: Subscription;
  private readonly offs: Array<() => void> = [];
  private closed = false;

  /** Use {@link Status.watch}. */
  constructor(
    private readonly centrifuge: Centrifuge,
    readonly user: string,
    opts: WatchOptions,
    private readonly relay: <E extends 'change' | 'unwatched'>(event: E, value: StatusEvents[E]) => void,
    private readonly onClose: () => void,
  ) {
    super();
    this.channel = `status:${user}`;
    this.subscription = centrifuge.getSubscription(this.channel)
      ?? centrifuge.newSubscription(this.channel, opts.token !== undefined ? { token: opts.token } : {});
    const sub = this.subscription;
    const onPublication = (ctx: PublicationContext): void => {
      const data = ctx.data as ({ type?: string } & UserStatus) | null;
      if (!data || data.type !== 'status') return;
      const status: UserStatus = { user: data.user, online: data.online, last_seen: data.last_seen };
      this.last = status;
      this.emit('change', status);
      this.relay('change', status);
    };
    const onUnsubscribed = (ctx: UnsubscribedContext): void => {
      const ev = { user: this.user, code: ctx.code, reason: ctx.reason };
      this.emit('unwatched', ev);
      this.relay('unwatched', ev);
    };
    const onError = (ctx: SubscriptionErrorContext): void => this.emit('error', HeraldError.from(ctx.error));
    this.offs.push(...attach(sub, { publication: onPublication, unsubscribed: onUnsubscribed, error: onError }));
    if (sub.state === 'unsubscribed') sub.subscribe();
  }

  /** Resolves once the subscription is live; rejects with a HeraldError if it is refused. */
  async ready(timeoutMs = 10000): Promise<void> {
    try {
      await this.subscription.ready(timeoutMs);
    } catch (err) {
      throw HeraldError.from(err);
    }
  }

  /** Stops watching. */
  unwatch(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      release(this.centrifuge, this.subscription, this.offs);
    } finally {
      this.onClose();
      this.removeAllListeners();
    }
  }
}

/**
 * Online status of other users (docs/status.md): each watched user is a
 * subscription to `status:<user>`, which needs a `status` namespace in the
 * server config. Fetch the current status with the server API's `user_status`
 * when the page loads, then follow the `change` events.
 *
 * ```ts
 * const status = new Status(centrifuge);
 * status.on('change', ({ user, online }) => setOnline(user, online));
 * status.watch('42');
 * ```
 */
export class Status extends Emitter<StatusEvents> {
  private readonly watches = new Map<string, StatusWatch>();

  constructor(readonly centrifuge: Centrifuge) {
    super();
  }

  /** Watches `userId`; watching a user already watched answers the same watch. */
  watch(userId: string, opts: WatchOptions = {}): StatusWatch {
    let w = this.watches.get(userId);
    if (!w) {
      w = new StatusWatch(
        this.centrifuge, userId, opts,
        (event, value) => this.emit(event, value),
        () => this.watches.delete(userId),
      );
      this.watches.set(userId, w);
    }
    return w;
  }

  /** Stops watching `userId`. */
  unwatch(userId: string): void {
    this.watches.get(userId)?.unwatch();
  }

  /** The users being watched. */
  get watched(): string[] {
    return [...this.watches.keys()];
  }

  /** Stops every watch. */
  close(): void {
    for (const w of [...this.watches.values()]) w.unwatch();
  }
}
