import type {
  Centrifuge, PublicationContext, Subscription, SubscriptionErrorContext, UnsubscribedContext,
} from 'centrifuge';

import { Emitter, attach, release } from './emitter';
import { HeraldError, call } from './errors';
import { stripUndefined } from './inbox';
import type {
  ChatPush, ConversationSummary, HistoryPage, Json, MembersEvent, Message, ReadEvent, TypingEvent,
} from './types';

/** Options of a {@link Chat}; every one has a default. */
export interface ChatOptions {
  /** The signed-in user: when given, their own typing pushes are not emitted. */
  userId?: string;
  /** How long after a user's last typing push `typing_stopped` fires (default 5000 ms). */
  typingTimeoutMs?: number;
  /** At most one `chat.typing` rpc per this many ms (default 2000). */
  typingThrottleMs?: number;
  /** Size of the history page fetched on each `subscribed` (default 50). */
  syncLimit?: number;
  /** Attempts of `send` when the failure is transient (default 3). */
  sendAttempts?: number;
  /** Pause between `send` attempts (default 500 ms, doubled each time). */
  sendRetryDelayMs?: number;
}

type ResolvedOptions = Required<Omit<ChatOptions, 'userId'>> & { userId?: string };

/** Options of {@link Conversation.send}. */
export interface SendOptions {
  /** Any JSON, stored with the message. */
  data?: Json;
  /**
   * The idempotency key: a send repeated with the same one stores nothing new and
   * answers the stored message. Generated when left out.
   */
  clientMsgId?: string;
}

/** Options of {@link Conversation.history}. */
export interface HistoryOptions {
  /** Only messages with an id below this one (default: from the newest). */
  before?: number;
  /** 1–100 (default 50). */
  limit?: number;
}

/** The `synced` event: the latest history page, fetched after each (re)subscribe. */
export interface SyncedEvent extends HistoryPage {
  conversation: string;
}

/** The `unsubscribed` event: the SDK's code and reason (103 for a non-member). */
export interface UnsubscribedEvent {
  conversation: string;
  code: number;
  reason: string;
}

/** Events of a {@link Conversation}. */
export interface ConversationEvents {
  /** A new message (sent by a member or posted by the backend). */
  message: Message;
  /** A typing push of another user (one per push; each renews the expiry). */
  typing: TypingEvent;
  /** A user's typing indicator expired, or their message arrived. */
  typing_stopped: TypingEvent;
  /** A read receipt. */
  read: ReadEvent;
  /** A membership change. */
  members: MembersEvent;
  /** The newest history page after each subscribe (the channel keeps no history). */
  synced: SyncedEvent;
  /** The subscription to `chat:<id>` is live (emitted before `synced`). */
  subscribed: { conversation: string };
  /** The subscription ended: refused (103 not a member), removed from the conversation, or unsubscribe(). */
  unsubscribed: UnsubscribedEvent;
  /** A subscription error, or a failed history fetch after subscribing. */
  error: HeraldError;
}

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A fresh client_msg_id: a random UUID where the platform has one. */
export function newClientMsgId(): string {
  const c = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  if (c && typeof c.randomUUID === 'function') return `c-${c.randomUUID()}`;
  let s = '';
  for (let i = 0; i < 4; i++) s += Math.floor(Math.random() * 0x100000000).toString(16).padStart(8, '0');
  return `c-${s}`;
}

/**
 * The user's conversations (docs/chat.md).
 *
 * ```ts
 * const chat = new Chat(centrifuge, { userId: '42' });
 * const conv = chat.conversation('order-1234');
 * conv.on('synced', ({ messages }) => render(messages));
 * conv.on('message', (m) => append(m));
 * await conv.send('Hello');
 * ```
 */
export class Chat {
  readonly options: ResolvedOptions;
  private readonly open = new Map<string, Conversation>();

  constructor(readonly centrifuge: Centrifuge, options: ChatOptions = {}) {
    this.options = {
      typingTimeoutMs: 5000,
      typingThrottleMs: 2000,
      syncLimit: 50,
      sendAttempts: 3,
      sendRetryDelayMs: 500,
      ...stripUndefined({ ...options }),
    };
  }

  /** My conversations, most recent first, each with its last message and my unread count. */
  async list(opts: { limit?: number } = {}): Promise<ConversationSummary[]> {
    const { conversations } = await call<{ conversations: ConversationSummary[] }>(
      this.centrifuge, 'chat.list', stripUndefined({ ...opts }),
    );
    return conversations;
  }

  /**
   * The conversation `id`, subscribed to `chat:<id>`. Asking again for an open
   * conversation answers the same object.
   */
  conversation(id: string): Conversation {
    let conv = this.open.get(id);
    if (!conv) {
      conv = new Conversation(this.centrifuge, id, this.options, () => this.open.delete(id));
      this.open.set(id, conv);
    } else {
      conv.subscribe();
    }
    return conv;
  }

  /** Unsubscribes every open conversation. */
  close(): void {
    for (const conv of [...this.open.values()]) conv.unsubscribe();
  }
}

/** One conversation: its channel subscription, its live events and its rpc calls. */
export class Conversation extends Emitter<ConversationEvents> {
  /** `chat:<id>`. */
  readonly channel: string;
  /** The SDK subscription to the channel. */
  readonly subscription: Subscription;
  /** The last `synced` page, or `null` before the first one. */
  lastSync: SyncedEvent | null = null;

  private readonly offs: Array<() => void> = [];
  private readonly typingTimers = new Map<string, ReturnType<typeof setTimeout>>();
  private lastTypingSent = 0;
  private closed = false;

  /** Use {@link Chat.conversation}. */
  constructor(
    readonly centrifuge: Centrifuge,
    readonly id: string,
    private readonly options: ResolvedOptions,
    private readonly onClose: () => void = () => {},
  ) {
    super();
    this.channel = `chat:${id}`;
    this.subscription = centrifuge.getSubscription(this.channel) ?? centrifuge.newSubscription(this.channel);
    const sub = this.subscription;
    const onPublication = (ctx: PublicationContext): void => this.onPublication(ctx);
    const onSubscribed = (): void => { void this.sync(); };
    const onUnsubscribed = (ctx: UnsubscribedContext): void => {
      this.clearTyping(true);
      this.emit('unsubscribed', { conversation: this.id, code: ctx.code, reason: ctx.reason });
    };
    const onError = (ctx: SubscriptionErrorContext): void => this.emit('error', HeraldError.from(ctx.error));
    this.offs.push(...attach(sub, {
      publication: onPublication, subscribed: onSubscribed, unsubscribed: onUnsubscribed, error: onError,
    }));
    if (sub.state === 'subscribed') void this.sync();
    else if (sub.state === 'unsubscribed') sub.subscribe();
  }

  /** The users whose typing indicator is showing. */
  get typingUsers(): string[] {
    return [...this.typingTimers.keys()];
  }

  /**
   * Resolves with the next `synced` page (at once if one was already seen);
   * rejects with a HeraldError if the subscription ends first (103 for a non-member).
   */
  ready(timeoutMs = 10000): Promise<SyncedEvent> {
    if (this.lastSync && this.subscription.state === 'subscribed') return Promise.resolve(this.lastSync);
    return new Promise((resolve, reject) => {
      const offs = [
        this.on('synced', (s) => { done(); resolve(s); }),
        this.on('unsubscribed', (u) => { done(); reject(new HeraldError(u.code, u.reason)); }),
      ];
      const timer = setTimeout(() => {
        done();
        reject(new HeraldError(1, `conversation ${this.id} not synced within ${timeoutMs} ms`));
      }, timeoutMs);
      function done(): void {
        clearTimeout(timer);
        for (const off of offs) off();
      }
    });
  }

  /**
   * Subscribes again after the server ended the subscription (refused, or I was
   * removed and have been added back); does nothing while subscribed or subscribing.
   */
  subscribe(): void {
    if (!this.closed && this.subscription.state === 'unsubscribed') this.subscription.subscribe();
  }

  /** Up to `limit` messages before message `before`, oldest first, and whether older ones exist. */
  history(opts: HistoryOptions = {}): Promise<HistoryPage> {
    return call<HistoryPage>(this.centrifuge, 'chat.history', stripUndefined({
      conversation: this.id, before: opts.before, limit: opts.limit,
    }));
  }

  /**
   * Sends a message and answers it as stored. Retry-safe: transient failures are
   * retried with the same client_msg_id, which the server stores only once.
   */
  async send(text: string, opts: SendOptions = {}): Promise<Message> {
    const request = stripUndefined({
      conversation: this.id,
      text,
      data: opts.data,
      client_msg_id: opts.clientMsgId ?? newClientMsgId(),
    });
    let wait = this.options.sendRetryDelayMs;
    for (let attempt = 1; ; attempt++) {
      try {
        const { message } = await call<{ message: Message }>(this.centrifuge, 'chat.send', request);
        return message;
      } catch (err) {
        const e = HeraldError.from(err);
        if (!e.retryable || attempt >= this.options.sendAttempts) throw e;
        await delay(wait);
        wait *= 2;
      }
    }
  }

  /**
   * Tells the other members I am typing. Throttled: at most one rpc per
   * `typingThrottleMs`; answers whether this call sent one.
   */
  async typing(): Promise<boolean> {
    const now = Date.now();
    if (now - this.lastTypingSent < this.options.typingThrottleMs) return false;
    this.lastTypingSent = now;
    try {
      await call<object>(this.centrifuge, 'chat.typing', { conversation: this.id });
      return true;
    } catch (err) {
      this.lastTypingSent = 0;
      throw err;
    }
  }

  /** Moves my read mark forward to `messageId`; answers my unread count here. */
  async read(messageId: number): Promise<number> {
    const { unread } = await call<{ unread: number }>(this.centrifuge, 'chat.read', {
      conversation: this.id, message_id: messageId,
    });
    return unread;
  }

  /** Leaves the channel and drops the SDK subscription; emits `unsubscribed`, then nothing more. */
  unsubscribe(): void {
    if (this.closed) return;
    this.closed = true;
    this.clearTyping(false);
    try {
      release(this.centrifuge, this.subscription, this.offs);
    } finally {
      this.onClose();
      this.removeAllListeners();
    }
  }

  /** Fetches the newest history page and emits `synced` (called on each `subscribed`). */
  private async sync(): Promise<void> {
    this.emit('subscribed', { conversation: this.id });
    try {
      const page = await this.history({ limit: this.options.syncLimit });
      if (this.closed) return;
      this.lastSync = { conversation: this.id, ...page };
      this.emit('synced', this.lastSync);
    } catch (err) {
      if (!this.closed) this.emit('error', HeraldError.from(err));
    }
  }

  private onPublication(ctx: PublicationContext): void {
    const push = ctx.data as ChatPush | null;
    if (!push || typeof push !== 'object') return;
    switch (push.type) {
      case 'message':
        if (push.message.user) this.stopTyping(push.message.user);
        this.emit('message', push.message);
        break;
      case 'typing':
        if (push.user === this.options.userId) break;
        this.startTyping(push.user);
        break;
      case 'read':
        this.emit('read', { conversation: this.id, user: push.user, message_id: push.message_id });
        break;
      case 'members':
        this.emit('members', {
          conversation: this.id,
          members: push.members,
          added: push.added ?? [],
          removed: push.removed ?? [],
        });
        break;
      default:
        break;
    }
  }

  private startTyping(user: string): void {
    const old = this.typingTimers.get(user);
    if (old !== undefined) clearTimeout(old);
    this.typingTimers.set(user, setTimeout(() => this.stopTyping(user), this.options.typingTimeoutMs));
    this.emit('typing', { conversation: this.id, user });
  }

  private stopTyping(user: string): void {
    const timer = this.typingTimers.get(user);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.typingTimers.delete(user);
    this.emit('typing_stopped', { conversation: this.id, user });
  }

  private clearTyping(emit: boolean): void {
    for (const user of [...this.typingTimers.keys()]) {
      if (emit) this.stopTyping(user);
      else {
        clearTimeout(this.typingTimers.get(user));
        this.typingTimers.delete(user);
      }
    }
  }
}
