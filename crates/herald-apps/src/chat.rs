//! Chat: conversations with members, stored messages, read marks and unread
//! counts, delivered live on `chat:<conversation>`.
//!
//! Message ids count up from 1 within a conversation, assigned under the
//! conversation's row lock; a node pushes a conversation's messages one at a
//! time, so members connected through it get them in id order. A member's unread
//! count is the distance from their read mark to the last message; sending
//! moves the sender's mark to their own message.

mod queries;

use crate::error::{AppResult, bad_request, database, denied, unknown_conversation};
use crate::store::validate_data;
use crate::{Apps, chat_channel, personal_channel};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const MAX_CONVERSATION_ID: usize = 128;
pub const MAX_MEMBERS: usize = 1000;
const MAX_CLIENT_MSG_ID: usize = 128;
const DEFAULT_HISTORY: i64 = 50;
const MAX_HISTORY: i64 = 100;

#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub id: i64,
    pub conversation: String,
    /// `None` for a system message.
    pub user: Option<String>,
    pub kind: String,
    pub text: String,
    pub data: Value,
    pub client_msg_id: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Message,
    System,
}

/// A message about to be stored: from a member's `chat.send` or the
/// backend's `chat_post`.
#[derive(Debug)]
pub struct Draft {
    pub conversation: String,
    pub user: Option<String>,
    pub kind: Kind,
    pub text: String,
    pub data: Value,
    pub client_msg_id: Option<String>,
    /// The sender must be a member (`chat.send`); the backend may post as anyone.
    pub member_only: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    pub conversation: String,
    pub title: Option<String>,
    #[serde(default)]
    pub members: Vec<String>,
    #[serde(default)]
    pub data: Value,
}

pub(crate) fn validate_conversation(id: &str) -> AppResult<()> {
    let valid = !id.is_empty()
        && id.len() <= MAX_CONVERSATION_ID
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(bad_request(format!(
            "conversation: 1 to {MAX_CONVERSATION_ID} letters, digits, '-', '_' or '.'"
        )))
    }
}

fn validate_members(members: &[String]) -> AppResult<()> {
    if members.len() > MAX_MEMBERS {
        return Err(bad_request(format!(
            "members: at most {MAX_MEMBERS} per call"
        )));
    }
    if members.iter().any(String::is_empty) {
        return Err(bad_request("members: a user id is empty"));
    }
    Ok(())
}

/// Where `user` stands in a conversation.
pub enum Standing {
    Unknown,
    Outsider,
    Member { last_seq: i64, read_seq: i64 },
}

impl Standing {
    /// The member's marks, or the error a non-member gets.
    fn member(self, conversation: &str) -> AppResult<(i64, i64)> {
        match self {
            Standing::Member { last_seq, read_seq } => Ok((last_seq, read_seq)),
            Standing::Outsider => Err(denied(format!("not a member of {conversation}"))),
            Standing::Unknown => Err(unknown_conversation(conversation)),
        }
    }
}

impl Apps {
    /// Creates a conversation, or updates its title and data and adds members.
    pub async fn create_conversation(&self, request: CreateRequest) -> AppResult<Value> {
        validate_conversation(&request.conversation)?;
        validate_members(&request.members)?;
        validate_data(&request.data)?;
        let now = herald_core::history::now_ms() as i64;
        let added = self
            .db
            .create_conversation(&request, now)
            .await
            .map_err(database("chat create"))?;
        let conversation = self.conversation(&request.conversation).await?;
        if !added.is_empty() {
            self.push_members(&request.conversation, &conversation["members"], &added, &[])
                .await;
        }
        Ok(json!({ "conversation": conversation }))
    }

    /// The conversation with its members, or 102.
    pub async fn conversation(&self, id: &str) -> AppResult<Value> {
        self.db
            .conversation(id)
            .await
            .map_err(database("chat conversation"))?
            .ok_or_else(|| unknown_conversation(id))
    }

    /// Adds (`add`) or removes members; answers the members after the change.
    pub async fn change_members(
        &self,
        conversation: &str,
        members: &[String],
        add: bool,
    ) -> AppResult<Value> {
        validate_conversation(conversation)?;
        validate_members(members)?;
        let now = herald_core::history::now_ms() as i64;
        let changed = if add {
            self.db.add_members(conversation, members, now).await
        } else {
            self.db.remove_members(conversation, members).await
        }
        .map_err(database("chat members"))?
        .ok_or_else(|| unknown_conversation(conversation))?;
        let view = self.conversation(conversation).await?;
        if !changed.is_empty() {
            let (added, removed) = if add {
                (&changed[..], &[][..])
            } else {
                (&[][..], &changed[..])
            };
            self.push_members(conversation, &view["members"], added, removed)
                .await;
        }
        if !add && let Some(node) = self.node() {
            let channel = chat_channel(conversation);
            for user in &changed {
                let _ = node.unsubscribe_user(user, &channel, None);
            }
        }
        Ok(json!({ "members": view["members"] }))
    }

    async fn push_members(
        &self,
        conversation: &str,
        members: &Value,
        added: &[String],
        removed: &[String],
    ) {
        let push =
            json!({"type": "members", "members": members, "added": added, "removed": removed});
        self.push(&chat_channel(conversation), &push).await;
    }

    /// Stores a message and delivers it; a repeated `client_msg_id` of the
    /// same sender answers the stored message and delivers nothing.
    pub async fn post(&self, draft: Draft) -> AppResult<Message> {
        validate_conversation(&draft.conversation)?;
        let length = draft.text.chars().count();
        if draft.text.trim().is_empty() || length > self.settings.max_text_length {
            return Err(bad_request(format!(
                "text: 1 to {} characters (got {length})",
                self.settings.max_text_length
            )));
        }
        validate_data(&draft.data)?;
        if draft
            .client_msg_id
            .as_ref()
            .is_some_and(|id| id.is_empty() || id.len() > MAX_CLIENT_MSG_ID)
        {
            return Err(bad_request(format!(
                "client_msg_id: 1 to {MAX_CLIENT_MSG_ID} characters"
            )));
        }
        let now = herald_core::history::now_ms() as i64;
        // Held until the message and its unread counts are pushed: on this
        // node, members get a conversation's messages in id order.
        let _ordered = self.ordered.lock(&chat_channel(&draft.conversation)).await;
        let stored = self
            .db
            .store_message(&draft, now)
            .await
            .map_err(database("chat send"))?;
        let (message, members) = match stored {
            queries::Stored::Unknown => return Err(unknown_conversation(&draft.conversation)),
            queries::Stored::NotMember => {
                return Err(denied(format!("not a member of {}", draft.conversation)));
            }
            queries::Stored::Duplicate(message) => return Ok(message),
            queries::Stored::New { message, members } => (message, members),
        };
        ::metrics::counter!(crate::metrics::CHAT_MESSAGES).increment(1);
        let channel = chat_channel(&message.conversation);
        self.push(&channel, &json!({"type": "message", "message": message}))
            .await;
        for member in members {
            let sender = message.user.as_deref() == Some(member.user.as_str());
            // Sending reads everything, so the sender's count only changes
            // (to 0) when it had unread messages.
            let unread = if sender {
                0
            } else {
                message.id - member.read_seq
            };
            if !sender || member.read_seq < message.id - 1 {
                self.push_chat_unread(&member.user, &message.conversation, unread)
                    .await;
            }
        }
        self.event("chat.message", || json!({ "message": message }));
        Ok(message)
    }

    async fn push_chat_unread(&self, user: &str, conversation: &str, unread: i64) {
        let push = json!({"type": "chat_unread", "conversation": conversation, "unread": unread});
        self.push(&personal_channel(user), &push).await;
    }

    /// Up to `limit` messages before message `before`, oldest first.
    pub async fn history(
        &self,
        conversation: &str,
        member: Option<&str>,
        before: Option<i64>,
        limit: Option<i64>,
    ) -> AppResult<Value> {
        validate_conversation(conversation)?;
        let limit = limit.unwrap_or(DEFAULT_HISTORY);
        if !(1..=MAX_HISTORY).contains(&limit) {
            return Err(bad_request(format!("limit: 1 to {MAX_HISTORY}")));
        }
        match member {
            Some(user) => {
                self.standing(conversation, user)
                    .await?
                    .member(conversation)?;
            }
            None => {
                self.conversation(conversation).await?;
            }
        }
        let (messages, has_more) = self
            .db
            .history(conversation, before.unwrap_or(i64::MAX), limit)
            .await
            .map_err(database("chat history"))?;
        Ok(json!({"messages": messages, "has_more": has_more}))
    }

    pub(crate) async fn standing(&self, conversation: &str, user: &str) -> AppResult<Standing> {
        self.db
            .standing(conversation, user)
            .await
            .map_err(database("chat membership"))
    }

    /// `user`'s conversations, most recently active first.
    pub async fn list_conversations(&self, user: &str, limit: Option<i64>) -> AppResult<Value> {
        let limit = limit.unwrap_or(MAX_HISTORY);
        if !(1..=MAX_HISTORY).contains(&limit) {
            return Err(bad_request(format!("limit: 1 to {MAX_HISTORY}")));
        }
        let conversations = self
            .db
            .conversations_of(user, limit)
            .await
            .map_err(database("chat list"))?;
        Ok(json!({ "conversations": conversations }))
    }

    /// Moves `user`'s read mark forward to `message_id`; answers their unread count.
    pub async fn mark_read(
        &self,
        conversation: &str,
        user: &str,
        message_id: i64,
    ) -> AppResult<i64> {
        validate_conversation(conversation)?;
        if message_id < 0 {
            return Err(bad_request("message_id: not a message id"));
        }
        let _ordered = self.ordered.lock(&chat_channel(conversation)).await;
        let (last_seq, read_seq) = self
            .standing(conversation, user)
            .await?
            .member(conversation)?;
        let mark = message_id.min(last_seq);
        if mark <= read_seq {
            return Ok(last_seq - read_seq);
        }
        self.db
            .move_read_mark(conversation, user, mark)
            .await
            .map_err(database("chat read"))?;
        let unread = last_seq - mark;
        let receipt = json!({"type": "read", "user": user, "message_id": mark});
        self.push(&chat_channel(conversation), &receipt).await;
        self.push_chat_unread(user, conversation, unread).await;
        Ok(unread)
    }

    /// Tells the conversation `user` is typing; nothing is stored.
    pub async fn typing(&self, conversation: &str, user: &str) -> AppResult<()> {
        validate_conversation(conversation)?;
        self.standing(conversation, user)
            .await?
            .member(conversation)?;
        let push = json!({"type": "typing", "user": user});
        self.push(&chat_channel(conversation), &push).await;
        Ok(())
    }
}
