//! What backends reach through the server API: `notify`, `notifications_*`
//! and `chat_*`. The backend is trusted: it names the user it acts for.

use crate::Apps;
use crate::chat::{self, CreateRequest, Kind};
use crate::error::{AppResult, bad_request, parse, switched_off};
use crate::inbox::{Action, ListQuery, NotifyRequest, Target};
use crate::rpc::{ConversationRequest, HistoryRequest};
use herald_core::durable::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// The server-API methods of the inbox and chat.
pub const METHODS: [&str; 10] = [
    "notify",
    "notifications_list",
    "notifications_update",
    "notifications_unread_count",
    "chat_create",
    "chat_add_members",
    "chat_remove_members",
    "chat_post",
    "chat_history",
    "chat_get",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateRequest {
    user: String,
    action: Action,
    ids: Option<Vec<i64>>,
    #[serde(default)]
    all: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserRequest {
    user: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MembersRequest {
    conversation: String,
    members: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PostRequest {
    conversation: String,
    text: String,
    user: Option<String>,
    kind: Option<Kind>,
    #[serde(default)]
    data: Value,
    client_msg_id: Option<String>,
}

/// Splits `user` out of a list request, so the rest parses as the client's query.
fn user_and_query(params: &str) -> AppResult<(String, ListQuery)> {
    let mut params: serde_json::Map<String, Value> = parse(params)?;
    let user = match params.remove("user") {
        Some(Value::String(user)) if !user.is_empty() => user,
        _ => return Err(bad_request("user: a user id is required")),
    };
    let query = serde_json::from_value(Value::Object(params)).map_err(bad_request)?;
    Ok((user, query))
}

fn required_user(user: &str) -> AppResult<()> {
    if user.is_empty() {
        Err(bad_request("user: a user id is required"))
    } else {
        Ok(())
    }
}

impl Apps {
    /// Runs server-API `method`, or `None` when it is not one of `METHODS`.
    pub fn api(
        self: &Arc<Self>,
        method: &str,
        params: &str,
    ) -> Option<BoxFuture<'static, AppResult<Value>>> {
        if !METHODS.contains(&method) {
            return None;
        }
        let apps = self.clone();
        let (method, params) = (method.to_string(), params.to_string());
        Some(Box::pin(
            async move { apps.api_call(&method, &params).await },
        ))
    }

    async fn api_call(&self, method: &str, params: &str) -> AppResult<Value> {
        let inbox = method.starts_with("notif");
        if inbox && !self.settings.inbox {
            return Err(switched_off("inbox"));
        }
        if !inbox && !self.settings.chat {
            return Err(switched_off("chat"));
        }
        match method {
            "notify" => {
                let request: NotifyRequest = parse(params)?;
                Ok(json!({"ids": self.notify(request).await?}))
            }
            "notifications_list" => {
                let (user, query) = user_and_query(params)?;
                self.list_notifications(&user, query).await
            }
            "notifications_update" => {
                let request: UpdateRequest = parse(params)?;
                required_user(&request.user)?;
                let target = Target::from_parts(request.ids, request.all)?;
                let updated = self
                    .update_notifications(&request.user, request.action, target)
                    .await?;
                Ok(json!({"updated": updated}))
            }
            "notifications_unread_count" => {
                let UserRequest { user } = parse(params)?;
                required_user(&user)?;
                Ok(json!({"count": self.unread_notifications(&user).await?}))
            }
            "chat_create" => {
                self.create_conversation(parse::<CreateRequest>(params)?)
                    .await
            }
            "chat_add_members" | "chat_remove_members" => {
                let request: MembersRequest = parse(params)?;
                let add = method == "chat_add_members";
                self.change_members(&request.conversation, &request.members, add)
                    .await
            }
            "chat_post" => {
                let request: PostRequest = parse(params)?;
                let kind = request.kind.unwrap_or(match request.user {
                    Some(_) => Kind::Message,
                    None => Kind::System,
                });
                if kind == Kind::Message && request.user.as_deref().is_none_or(str::is_empty) {
                    return Err(bad_request(
                        "user: a message of kind \"message\" needs its sender",
                    ));
                }
                let draft = chat::Draft {
                    conversation: request.conversation,
                    user: request.user.filter(|u| !u.is_empty()),
                    kind,
                    text: request.text,
                    data: request.data,
                    client_msg_id: request.client_msg_id,
                    member_only: false,
                };
                Ok(json!({"message": self.post(draft).await?}))
            }
            "chat_history" => {
                let request: HistoryRequest = parse(params)?;
                self.history(&request.conversation, None, request.before, request.limit)
                    .await
            }
            "chat_get" => {
                let ConversationRequest { conversation } = parse(params)?;
                chat::validate_conversation(&conversation)?;
                Ok(json!({"conversation": self.conversation(&conversation).await?}))
            }
            _ => unreachable!("only METHODS are dispatched"),
        }
    }
}
