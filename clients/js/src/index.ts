/**
 * Typed helpers for Herald's notification inbox, chat and online status, on top
 * of the published `centrifuge` SDK (docs/inbox.md, docs/chat.md, docs/status.md).
 */
export { Emitter } from './emitter';
export type { EventMap, Listener } from './emitter';
export { HeraldError, ErrorCode, call } from './errors';
export type { RpcClient } from './errors';
export { Inbox } from './inbox';
export type { InboxEvents } from './inbox';
export { Chat, Conversation, newClientMsgId } from './chat';
export type {
  ChatOptions, ConversationEvents, HistoryOptions, SendOptions, SyncedEvent, UnsubscribedEvent,
} from './chat';
export { Status, StatusWatch } from './status';
export type { StatusEvents, WatchOptions } from './status';
export * from './types';
