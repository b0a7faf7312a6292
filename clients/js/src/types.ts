/** Any JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

// ----------------------------------------------------------------- inbox ----

/** A notification's level. */
export type NotificationLevel = 'info' | 'success' | 'warning' | 'error';

/** One notification of a user's inbox (docs/inbox.md). */
export interface Notification {
  id: number;
  user: string;
  title: string;
  message: string;
  level: NotificationLevel;
  category: string;
  data: Json;
  read: boolean;
  archived: boolean;
  /** Milliseconds since the epoch. */
  created_at: number;
}

/** Options of `inbox.list`; every field may be left out. */
export interface InboxListOptions {
  /** 1–100, default 20. */
  limit?: number;
  /** The `next_cursor` of the previous page. */
  cursor?: string | null;
  unread_only?: boolean;
  level?: NotificationLevel | null;
  category?: string | null;
  include_archived?: boolean;
}

/** One page of `inbox.list`, newest first. */
export interface NotificationPage {
  notifications: Notification[];
  /** Pass back as `cursor` for the next page; `null` on the last page. */
  next_cursor: string | null;
}

/** A user's inbox preferences. */
export interface InboxPreferences {
  muted_levels: NotificationLevel[];
  muted_categories: string[];
}

/** A change of the user's unread count in one conversation (pushed on `inbox:#<user>`). */
export interface ChatUnread {
  conversation: string;
  unread: number;
}

/** What the server publishes on `inbox:#<user>`. */
export type InboxPush =
  | { type: 'notification'; notification: Notification }
  | { type: 'unread_count'; count: number }
  | ({ type: 'chat_unread' } & ChatUnread);

// ------------------------------------------------------------------ chat ----

/** A message's kind: sent by a member, or posted by the backend as a system line. */
export type MessageKind = 'message' | 'system';

/** One chat message (docs/chat.md). */
export interface Message {
  /** Counts up from 1 within each conversation. */
  id: number;
  conversation: string;
  /** The sender; empty or absent for system messages. */
  user?: string | null;
  kind: MessageKind;
  text: string;
  data: Json;
  client_msg_id?: string | null;
  /** Milliseconds since the epoch. */
  created_at: number;
}

/** One page of `chat.history`, oldest first. */
export interface HistoryPage {
  messages: Message[];
  /** Whether older messages exist. */
  has_more: boolean;
}

/** One of my conversations as `chat.list` answers it. */
export interface ConversationSummary {
  id: string;
  title: string;
  data: Json;
  members: string[];
  created_at: number;
  last_message: Message | null;
  /** My unread count in this conversation. */
  unread: number;
}

/** A typing indicator of one user. */
export interface TypingEvent {
  conversation: string;
  user: string;
}

/** A read receipt: `user` has read up to `message_id`. */
export interface ReadEvent {
  conversation: string;
  user: string;
  message_id: number;
}

/** A membership change. */
export interface MembersEvent {
  conversation: string;
  members: string[];
  added: string[];
  removed: string[];
}

/** What the server publishes on `chat:<conversation>`. */
export type ChatPush =
  | { type: 'message'; message: Message }
  | { type: 'typing'; user: string }
  | { type: 'read'; user: string; message_id: number }
  | { type: 'members'; members: string[]; added?: string[]; removed?: string[] };

// ---------------------------------------------------------------- status ----

/** A user's online status (docs/status.md). */
export interface UserStatus {
  user: string;
  online: boolean;
  /** Milliseconds since the epoch; `null` for a user the server has not seen. */
  last_seen: number | null;
}
