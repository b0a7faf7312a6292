//! What browsers reach through the client protocol: `rpc` methods (`inbox.*`,
//! `chat.*`), who may subscribe to `chat:<conversation>`, and the personal
//! channel every connection joins.

use crate::chat::{self, Kind};
use crate::error::{AppResult, bad_request, denied, parse, switched_off};
use crate::inbox::{Action, ListQuery, Preferences, Target};
use crate::{Apps, CHAT_NAMESPACE, personal_channel};
use herald_core::durable::BoxFuture;
use herald_core::extension::{Caller, Extension, RpcFuture};
use herald_protocol::ErrorCode;
use serde::Deserialize;
use serde::Serialize;
use serde_json::json;
use serde_json::value::RawValue;
use std::sync::Arc;

/// The apps as the node sees them.
pub(crate) struct Plugged(pub(crate) Arc<Apps>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Marks {
    ids: Option<Vec<i64>>,
    #[serde(default)]
    all: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Ids {
    ids: Vec<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PreferencesRequest {
    #[serde(default)]
    get: bool,
    set: Option<Preferences>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Limit {
    limit: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistoryRequest {
    pub conversation: String,
    pub before: Option<i64>,
    pub limit: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendRequest {
    conversation: String,
    text: String,
    #[serde(default)]
    data: serde_json::Value,
    client_msg_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConversationRequest {
    pub conversation: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadRequest {
    conversation: String,
    message_id: i64,
}

fn raw(value: &impl Serialize) -> AppResult<Box<RawValue>> {
    serde_json::value::to_raw_value(value).map_err(|e| bad_request(e.to_string()))
}

impl Apps {
    /// Runs client method `method` (one of `METHODS`) for `user`.
    async fn rpc(
        self: Arc<Self>,
        user: String,
        method: String,
        data: String,
    ) -> AppResult<Box<RawValue>> {
        let feature = if method.starts_with("inbox.") {
            "inbox"
        } else {
            "chat"
        };
        let enabled = if feature == "inbox" {
            self.settings.inbox
        } else {
            self.settings.chat
        };
        if !enabled {
            return Err(switched_off(feature));
        }
        if user.is_empty() {
            return Err(denied(format!("anonymous connections have no {feature}")));
        }
        let user = user.as_str();
        match method.as_str() {
            "inbox.list" => raw(&self
                .list_notifications(user, parse::<ListQuery>(&data)?)
                .await?),
            "inbox.unread_count" => raw(&json!({"count": self.unread_notifications(user).await?})),
            "inbox.mark_read" | "inbox.mark_unread" => {
                let marks: Marks = parse(&data)?;
                let action = if method == "inbox.mark_read" {
                    Action::Read
                } else {
                    Action::Unread
                };
                let target = Target::from_parts(marks.ids, marks.all)?;
                raw(&json!({"updated": self.update_notifications(user, action, target).await?}))
            }
            "inbox.archive" | "inbox.delete" => {
                let Ids { ids } = parse(&data)?;
                let action = if method == "inbox.archive" {
                    Action::Archive
                } else {
                    Action::Delete
                };
                let target = Target::from_parts(Some(ids), false)?;
                raw(&json!({"updated": self.update_notifications(user, action, target).await?}))
            }
            "inbox.preferences" => {
                let request: PreferencesRequest = parse(&data)?;
                if request.get == request.set.is_some() {
                    return Err(bad_request("give either get: true or set: {...}"));
                }
                raw(&self.inbox_preferences(user, request.set).await?)
            }
            "chat.list" => {
                let Limit { limit } = parse(&data)?;
                raw(&self.list_conversations(user, limit).await?)
            }
            "chat.history" => {
                let request: HistoryRequest = parse(&data)?;
                raw(&self
                    .history(
                        &request.conversation,
                        Some(user),
                        request.before,
                        request.limit,
                    )
                    .await?)
            }
            "chat.send" => {
                let request: SendRequest = parse(&data)?;
                let draft = chat::Draft {
                    conversation: request.conversation,
                    user: Some(user.to_string()),
                    kind: Kind::Message,
                    text: request.text,
                    data: request.data,
                    client_msg_id: request.client_msg_id,
                    member_only: true,
                };
                raw(&json!({"message": self.post(draft).await?}))
            }
            "chat.typing" => {
                let ConversationRequest { conversation } = parse(&data)?;
                self.typing(&conversation, user).await?;
                raw(&json!({}))
            }
            "chat.read" => {
                let request: ReadRequest = parse(&data)?;
                let unread = self
                    .mark_read(&request.conversation, user, request.message_id)
                    .await?;
                raw(&json!({"unread": unread}))
            }
            _ => unreachable!("only known methods are dispatched"),
        }
    }
}

const METHODS: [&str; 12] = [
    "inbox.list",
    "inbox.unread_count",
    "inbox.mark_read",
    "inbox.mark_unread",
    "inbox.archive",
    "inbox.delete",
    "inbox.preferences",
    "chat.list",
    "chat.history",
    "chat.send",
    "chat.typing",
    "chat.read",
];

impl Extension for Plugged {
    fn rpc(&self, caller: Caller, method: &str, data: &RawValue) -> Option<RpcFuture> {
        if !METHODS.contains(&method) {
            return None;
        }
        let apps = self.0.clone();
        let (method, data) = (method.to_string(), data.get().to_string());
        Some(Box::pin(apps.rpc(caller.user, method, data)))
    }

    fn guards(&self, channel: &str) -> bool {
        self.0.settings.chat && herald_core::channel::namespace_of(channel) == Some(CHAT_NAMESPACE)
    }

    fn may_subscribe(
        &self,
        user: &str,
        channel: &str,
    ) -> BoxFuture<'static, Result<bool, ErrorCode>> {
        let apps = self.0.clone();
        let user = user.to_string();
        let conversation = channel
            .split_once(':')
            .map(|(_, conversation)| conversation.to_string())
            .unwrap_or_default();
        Box::pin(async move {
            if user.is_empty() || chat::validate_conversation(&conversation).is_err() {
                return Ok(false);
            }
            match apps.standing(&conversation, &user).await {
                Ok(standing) => Ok(matches!(standing, chat::Standing::Member { .. })),
                Err(_) => Err(ErrorCode::INTERNAL),
            }
        })
    }

    fn personal_channels(&self, user: &str) -> Vec<String> {
        if self.0.settings.inbox || self.0.settings.chat {
            vec![personal_channel(user)]
        } else {
            Vec::new()
        }
    }
}
