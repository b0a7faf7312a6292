import type {
  Centrifuge, PublicationContext, Subscription, SubscriptionErrorContext, UnsubscribedContext,
} from 'centrifuge';

/** A map from event name to the type of the value that event carries. */
export type EventMap = object;

/** A listener for an event that carries a value of type `T`. */
export type Listener<T> = (value: T) => void;

/**
 * A tiny typed event emitter: one value per event, no wildcard, no `this` magic.
 * `on` answers a function that removes the listener again.
 */
export class Emitter<Events extends EventMap> {
  private readonly listeners = new Map<keyof Events, Set<Listener<never>>>();

  /** Calls `listener` for every `event`; answers a function that removes it. */
  on<E extends keyof Events>(event: E, listener: Listener<Events[E]>): () => void {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener as Listener<never>);
    return () => this.off(event, listener);
  }

  /** Calls `listener` for the next `event` only. */
  once<E extends keyof Events>(event: E, listener: Listener<Events[E]>): () => void {
    const off = this.on(event, (value) => {
      off();
      listener(value);
    });
    return off;
  }

  /** Removes a listener added with `on`. */
  off<E extends keyof Events>(event: E, listener: Listener<Events[E]>): void {
    this.listeners.get(event)?.delete(listener as Listener<never>);
  }

  /** Removes every listener (of one event, or of all). */
  removeAllListeners(event?: keyof Events): void {
    if (event === undefined) this.listeners.clear();
    else this.listeners.delete(event);
  }

  /** The number of listeners of `event`. */
  listenerCount(event: keyof Events): number {
    return this.listeners.get(event)?.size ?? 0;
  }

  /**
   * Resolves with the next `event` for which `predicate` holds; rejects after
   * `timeoutMs` when one is given.
   */
  next<E extends keyof Events>(
    event: E,
    { timeoutMs, predicate }: { timeoutMs?: number; predicate?: (value: Events[E]) => boolean } = {},
  ): Promise<Events[E]> {
    return new Promise((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const off = this.on(event, (value) => {
        if (predicate && !predicate(value)) return;
        off();
        if (timer !== undefined) clearTimeout(timer);
        resolve(value);
      });
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          off();
          reject(new Error(`timed out after ${timeoutMs} ms waiting for '${String(event)}'`));
        }, timeoutMs);
      }
    });
  }

  /** Calls every listener of `event` with `value`, in the order they were added. */
  protected emit<E extends keyof Events>(event: E, value: Events[E]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) (listener as Listener<Events[E]>)(value);
  }
}

/** Handlers for the SDK subscription events the helpers follow. */
export interface SubscriptionHandlers {
  publication?: (ctx: PublicationContext) => void;
  subscribed?: () => void;
  unsubscribed?: (ctx: UnsubscribedContext) => void;
  error?: (ctx: SubscriptionErrorContext) => void;
}

/** Attaches `handlers` to `sub`; answers the functions that detach them again. */
export function attach(sub: Subscription, handlers: SubscriptionHandlers): Array<() => void> {
  const offs: Array<() => void> = [];
  const { publication, subscribed, unsubscribed, error } = handlers;
  if (publication) { sub.on('publication', publication); offs.push(() => sub.off('publication', publication)); }
  if (subscribed) { sub.on('subscribed', subscribed); offs.push(() => sub.off('subscribed', subscribed)); }
  if (unsubscribed) { sub.on('unsubscribed', unsubscribed); offs.push(() => sub.off('unsubscribed', unsubscribed)); }
  if (error) { sub.on('error', error); offs.push(() => sub.off('error', error)); }
  return offs;
}

/** Unsubscribes `sub`, detaches `offs`, and drops the SDK subscription for good. */
export function release(centrifuge: Centrifuge, sub: Subscription, offs: Array<() => void>): void {
  try {
    sub.unsubscribe();
  } finally {
    for (const off of offs.splice(0)) off();
    centrifuge.removeSubscription(sub);
  }
}
