import type { Centrifuge, ServerPublicationContext } from 'centrifuge';

import { Emitter } from './emitter';
import { HeraldError, call } from './errors';
import type {
  ChatUnread, InboxListOptions, InboxPreferences, InboxPush, Notification, NotificationPage,
} from './types';

/** Events of an {@link Inbox}. */
export interface InboxEvents {
  /** A new notification (muted ones are stored read and not pushed). */
  notification: Notification;
  /** The user's unread count, after every change and after every (re)connect. */
  unread_count: number;
  /** The user's unread count in one conversation changed. */
  chat_unread: ChatUnread;
  /** A refetch after a reconnect failed. */
  error: HeraldError;
}

/** Answer of the update methods. */
interface Updated {
  updated: number;
}

/**
 * The signed-in user's notification inbox, over the SDK's `rpc` and the user's
 * personal channel `inbox:#<user>` (docs/inbox.md).
 *
 * ```ts
 * const inbox = new Inbox(centrifuge, '42');
 * inbox.on('unread_count', (n) => setBadge(n));
 * inbox.on('notification', (n) => showToast(n.title));
 * ```
 *
 * That channel keeps no history, so on every `connected` event the inbox asks
 * `inbox.unread_count` again and emits `unread_count` with the answer.
 */
export class Inbox extends Emitter<InboxEvents> {
  /** The personal channel the server subscribes every connection of the user to. */
  readonly channel: string;
  /** The last unread count seen (pushed or fetched); `null` before the first one. */
  unread: number | null = null;

  private readonly offs: Array<() => void> = [];
  /** Counts unread-count pushes, so that a refetch older than a push is dropped. */
  private pushes = 0;
  private closed = false;

  constructor(readonly centrifuge: Centrifuge, readonly userId: string) {
    super();
    this.channel = `inbox:#${userId}`;
    const onPublication = (ctx: ServerPublicationContext): void => this.onPublication(ctx);
    const onConnected = (): void => { void this.refresh(); };
    centrifuge.on('publication', onPublication);
    centrifuge.on('connected', onConnected);
    this.offs.push(
      () => centrifuge.off('publication', onPublication),
      () => centrifuge.off('connected', onConnected),
    );
    if (centrifuge.state === 'connected') void this.refresh();
  }

  /** One page of notifications, newest first. */
  list(opts: InboxListOptions = {}): Promise<NotificationPage> {
    return call<NotificationPage>(this.centrifuge, 'inbox.list', stripUndefined({ ...opts }));
  }

  /** The number of unread, unarchived notifications. */
  async unreadCount(): Promise<number> {
    const { count } = await call<{ count: number }>(this.centrifuge, 'inbox.unread_count', {});
    return count;
  }

  /** Marks notifications read; answers how many changed. */
  markRead(ids: number[] | 'all'): Promise<number> {
    return this.update('inbox.mark_read', idsOrAll(ids));
  }

  /** Marks notifications unread; answers how many changed. */
  markUnread(ids: number[] | 'all'): Promise<number> {
    return this.update('inbox.mark_unread', idsOrAll(ids));
  }

  /** Archives notifications (they leave the list and the unread count); answers how many changed. */
  archive(ids: number[]): Promise<number> {
    return this.update('inbox.archive', { ids });
  }

  /** Deletes notifications; answers how many changed. */
  delete(ids: number[]): Promise<number> {
    return this.update('inbox.delete', { ids });
  }

  /** The user's muted levels and categories. */
  preferences(): Promise<InboxPreferences> {
    return call<InboxPreferences>(this.centrifuge, 'inbox.preferences', { get: true });
  }

  /**
   * Sets the muted levels and categories; a field left out keeps its current value.
   * Answers the preferences now in force.
   */
  async setPreferences(prefs: Partial<InboxPreferences>): Promise<InboxPreferences> {
    let set: InboxPreferences;
    if (prefs.muted_levels !== undefined && prefs.muted_categories !== undefined) {
      set = { muted_levels: prefs.muted_levels, muted_categories: prefs.muted_categories };
    } else {
      set = { ...(await this.preferences()), ...stripUndefined({ ...prefs }) };
    }
    return call<InboxPreferences>(this.centrifuge, 'inbox.preferences', { set });
  }

  /**
   * Asks the server for the unread count and emits `unread_count` with it (unless
   * a push overtook the answer). Called on every `connected` event.
   */
  async refresh(): Promise<number | null> {
    const before = this.pushes;
    try {
      const count = await this.unreadCount();
      if (this.closed || this.pushes !== before) return this.unread;
      this.unread = count;
      this.emit('unread_count', count);
      return count;
    } catch (err) {
      if (!this.closed) this.emit('error', HeraldError.from(err));
      return null;
    }
  }

  /** Stops listening to the client; the inbox emits nothing more. */
  close(): void {
    this.closed = true;
    for (const off of this.offs.splice(0)) off();
    this.removeAllListeners();
  }

  private async update(method: string, data: object): Promise<number> {
    const { updated } = await call<Updated>(this.centrifuge, method, data);
    return updated;
  }

  private onPublication(ctx: ServerPublicationContext): void {
    if (ctx.channel !== this.channel || this.closed) return;
    const push = ctx.data as InboxPush | null;
    if (!push || typeof push !== 'object') return;
    switch (push.type) {
      case 'notification':
        this.emit('notification', push.notification);
        break;
      case 'unread_count':
        this.pushes += 1;
        this.unread = push.count;
        this.emit('unread_count', push.count);
        break;
      case 'chat_unread':
        this.emit('chat_unread', { conversation: push.conversation, unread: push.unread });
        break;
      default:
        break;
    }
  }
}

function idsOrAll(ids: number[] | 'all'): { ids: number[] } | { all: true } {
  return ids === 'all' ? { all: true } : { ids };
}

/** A copy without the keys whose value is `undefined` (JSON would drop them anyway). */
export function stripUndefined<T extends object>(obj: T): T {
  for (const key of Object.keys(obj) as Array<keyof T>) {
    if (obj[key] === undefined) delete obj[key];
  }
  return obj;
}
