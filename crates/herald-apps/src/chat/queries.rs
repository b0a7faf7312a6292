//! The SQL behind chat, one method per question, on SQLite and PostgreSQL alike.
//!
//! A transaction that writes starts with its write: on SQLite a transaction
//! that reads first and writes later can fail outright when another writer
//! got there in between, instead of waiting its turn.

use super::{CreateRequest, Draft, Kind, Message, Standing};
use crate::store::{Db, data_from_text, data_to_text, placeholders};
use serde_json::{Value, json};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use std::collections::HashMap;

/// A member's read mark as it was before a new message.
#[derive(Debug)]
pub(crate) struct Member {
    pub user: String,
    pub read_seq: i64,
}

pub(crate) enum Stored {
    Unknown,
    NotMember,
    Duplicate(Message),
    New {
        message: Message,
        members: Vec<Member>,
    },
}

const MESSAGE_COLUMNS: &str =
    "conversation, seq, user_id, kind, text, data, client_msg_id, created_ms";

fn message(row: &AnyRow) -> Result<Message, sqlx::Error> {
    let user: String = row.try_get("user_id")?;
    let data: Option<String> = row.try_get("data")?;
    Ok(Message {
        id: row.try_get("seq")?,
        conversation: row.try_get("conversation")?,
        user: (!user.is_empty()).then_some(user),
        kind: row.try_get("kind")?,
        text: row.try_get("text")?,
        data: data_from_text(data),
        client_msg_id: row.try_get("client_msg_id")?,
        created_at: row.try_get("created_ms")?,
    })
}

impl Db {
    /// Upserts the conversation; answers the members it added.
    pub(crate) async fn create_conversation(
        &self,
        request: &CreateRequest,
        now: i64,
    ) -> Result<Vec<String>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let upsert = format!(
            "INSERT INTO herald_conversations \
             (id, title, data, last_seq, created_ms, updated_ms, activity) \
             VALUES ($1, COALESCE($2, ''), $3, 0, $4, $4, {}) \
             ON CONFLICT (id) DO UPDATE SET \
             title = COALESCE($2, herald_conversations.title), \
             data = COALESCE($3, herald_conversations.data)",
            self.next_activity()
        );
        sqlx::query(AssertSqlSafe(upsert))
            .bind(&request.conversation)
            .bind(&request.title)
            .bind(data_to_text(&request.data))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let added = insert_members(&mut tx, &request.conversation, &request.members, now).await?;
        tx.commit().await?;
        Ok(added)
    }

    /// `None` when the conversation does not exist.
    pub(crate) async fn add_members(
        &self,
        conversation: &str,
        members: &[String],
        now: i64,
    ) -> Result<Option<Vec<String>>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        // Written first, this also takes the conversation's lock.
        let exists =
            sqlx::query("UPDATE herald_conversations SET updated_ms = updated_ms WHERE id = $1")
                .bind(conversation)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
        if !exists {
            return Ok(None);
        }
        let added = insert_members(&mut tx, conversation, members, now).await?;
        tx.commit().await?;
        Ok(Some(added))
    }

    pub(crate) async fn remove_members(
        &self,
        conversation: &str,
        members: &[String],
    ) -> Result<Option<Vec<String>>, sqlx::Error> {
        let mut removed = Vec::new();
        let mut tx = self.pool.begin().await?;
        for user in members {
            let deleted = sqlx::query(
                "DELETE FROM herald_chat_members WHERE conversation = $1 AND user_id = $2",
            )
            .bind(conversation)
            .bind(user)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if deleted > 0 {
                removed.push(user.clone());
            }
        }
        let exists: Option<String> =
            sqlx::query_scalar("SELECT id FROM herald_conversations WHERE id = $1")
                .bind(conversation)
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(exists.map(|_| removed))
    }

    /// The conversation as the API shows it, or `None`.
    pub(crate) async fn conversation(&self, id: &str) -> Result<Option<Value>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT id, title, data, last_seq, created_ms FROM herald_conversations WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(json!({
            "id": row.try_get::<String, _>("id")?,
            "title": row.try_get::<String, _>("title")?,
            "data": data_from_text(row.try_get("data")?),
            "members": self.members(id).await?,
            "created_at": row.try_get::<i64, _>("created_ms")?,
            "last_message_id": row.try_get::<i64, _>("last_seq")?,
        })))
    }

    async fn members(&self, conversation: &str) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT user_id FROM herald_chat_members WHERE conversation = $1 ORDER BY user_id",
        )
        .bind(conversation)
        .fetch_all(&self.pool)
        .await
    }

    pub(crate) async fn standing(
        &self,
        conversation: &str,
        user: &str,
    ) -> Result<Standing, sqlx::Error> {
        let row = sqlx::query(
            "SELECT c.last_seq AS last_seq, m.read_seq AS read_seq FROM herald_conversations c \
             LEFT JOIN herald_chat_members m ON m.conversation = c.id AND m.user_id = $2 \
             WHERE c.id = $1",
        )
        .bind(conversation)
        .bind(user)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(Standing::Unknown);
        };
        Ok(match row.try_get::<Option<i64>, _>("read_seq")? {
            Some(read_seq) => Standing::Member {
                last_seq: row.try_get("last_seq")?,
                read_seq,
            },
            None => Standing::Outsider,
        })
    }

    pub(crate) async fn store_message(
        &self,
        draft: &Draft,
        now: i64,
    ) -> Result<Stored, sqlx::Error> {
        let sender = draft.user.as_deref().unwrap_or("");
        let mut tx = self.pool.begin().await?;
        let bump = format!(
            "UPDATE herald_conversations \
             SET last_seq = last_seq + 1, updated_ms = $2, activity = {} \
             WHERE id = $1 RETURNING last_seq",
            self.next_activity()
        );
        let seq: Option<i64> = sqlx::query_scalar(AssertSqlSafe(bump))
            .bind(&draft.conversation)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(seq) = seq else {
            return Ok(Stored::Unknown);
        };
        let members: Vec<Member> = sqlx::query(
            "SELECT user_id, read_seq FROM herald_chat_members WHERE conversation = $1",
        )
        .bind(&draft.conversation)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| {
            Ok(Member {
                user: row.try_get("user_id")?,
                read_seq: row.try_get("read_seq")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
        if draft.member_only && !members.iter().any(|m| m.user == sender) {
            return Ok(Stored::NotMember);
        }
        if let Some(client_msg_id) = &draft.client_msg_id {
            let sql = format!(
                "SELECT {MESSAGE_COLUMNS} FROM herald_chat_messages \
                 WHERE conversation = $1 AND user_id = $2 AND client_msg_id = $3"
            );
            let existing = sqlx::query(AssertSqlSafe(sql))
                .bind(&draft.conversation)
                .bind(sender)
                .bind(client_msg_id)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(row) = existing {
                return Ok(Stored::Duplicate(message(&row)?));
            }
        }
        let kind = match draft.kind {
            Kind::Message => "message",
            Kind::System => "system",
        };
        sqlx::query(
            "INSERT INTO herald_chat_messages \
             (conversation, seq, user_id, kind, text, data, client_msg_id, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&draft.conversation)
        .bind(seq)
        .bind(sender)
        .bind(kind)
        .bind(&draft.text)
        .bind(data_to_text(&draft.data))
        .bind(&draft.client_msg_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // Sending reads everything up to the message sent.
        if members.iter().any(|m| m.user == sender) {
            sqlx::query(
                "UPDATE herald_chat_members SET read_seq = $3 WHERE conversation = $1 AND user_id = $2",
            )
            .bind(&draft.conversation)
            .bind(sender)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        let message = Message {
            id: seq,
            conversation: draft.conversation.clone(),
            user: draft.user.clone(),
            kind: kind.into(),
            text: draft.text.clone(),
            data: draft.data.clone(),
            client_msg_id: draft.client_msg_id.clone(),
            created_at: now,
        };
        Ok(Stored::New { message, members })
    }

    /// Up to `limit` messages before `before`, oldest first, and whether
    /// older ones exist.
    pub(crate) async fn history(
        &self,
        conversation: &str,
        before: i64,
        limit: i64,
    ) -> Result<(Vec<Message>, bool), sqlx::Error> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM herald_chat_messages \
             WHERE conversation = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(conversation)
            .bind(before)
            .bind(limit + 1)
            .fetch_all(&self.pool)
            .await?;
        let mut messages = rows.iter().map(message).collect::<Result<Vec<_>, _>>()?;
        let has_more = messages.len() > limit as usize;
        messages.truncate(limit as usize);
        messages.reverse();
        Ok((messages, has_more))
    }

    pub(crate) async fn conversations_of(
        &self,
        user: &str,
        limit: i64,
    ) -> Result<Vec<Value>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT c.id AS id, c.title AS title, c.data AS data, c.last_seq AS last_seq, \
             c.created_ms AS created_ms, m.read_seq AS read_seq \
             FROM herald_chat_members m JOIN herald_conversations c ON c.id = m.conversation \
             WHERE m.user_id = $1 ORDER BY c.activity DESC LIMIT $2",
        )
        .bind(user)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut listed = Vec::with_capacity(rows.len());
        for row in &rows {
            listed.push((
                row.try_get::<String, _>("id")?,
                row.try_get::<i64, _>("last_seq")?,
            ));
        }
        // Two more queries for the whole page, not two per conversation.
        let mut last_messages = self.last_messages(&listed).await?;
        let mut members = self.members_of(&listed).await?;
        let mut conversations = Vec::with_capacity(rows.len());
        for (row, (id, last_seq)) in rows.iter().zip(listed) {
            let read_seq: i64 = row.try_get("read_seq")?;
            conversations.push(json!({
                "title": row.try_get::<String, _>("title")?,
                "data": data_from_text(row.try_get("data")?),
                "members": members.remove(&id).unwrap_or_default(),
                "created_at": row.try_get::<i64, _>("created_ms")?,
                "last_message": last_messages.remove(&id),
                "unread": last_seq - read_seq,
                "id": id,
            }));
        }
        Ok(conversations)
    }

    /// The message numbered `last_seq` of each conversation that has one.
    async fn last_messages(
        &self,
        listed: &[(String, i64)],
    ) -> Result<HashMap<String, Message>, sqlx::Error> {
        if listed.is_empty() {
            return Ok(HashMap::new());
        }
        let wanted: Vec<String> = (0..listed.len())
            .map(|i| format!("(conversation = ${} AND seq = ${})", 2 * i + 1, 2 * i + 2))
            .collect();
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM herald_chat_messages WHERE {}",
            wanted.join(" OR ")
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (id, last_seq) in listed {
            query = query.bind(id).bind(last_seq);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| message(row).map(|m| (m.conversation.clone(), m)))
            .collect()
    }

    /// The members of each conversation, each list sorted.
    async fn members_of(
        &self,
        listed: &[(String, i64)],
    ) -> Result<HashMap<String, Vec<String>>, sqlx::Error> {
        if listed.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = format!(
            "SELECT conversation, user_id FROM herald_chat_members \
             WHERE conversation IN ({}) ORDER BY user_id",
            placeholders(1, listed.len())
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (id, _) in listed {
            query = query.bind(id);
        }
        let mut members: HashMap<String, Vec<String>> = HashMap::new();
        for row in query.fetch_all(&self.pool).await? {
            members
                .entry(row.try_get("conversation")?)
                .or_default()
                .push(row.try_get("user_id")?);
        }
        Ok(members)
    }

    pub(crate) async fn move_read_mark(
        &self,
        conversation: &str,
        user: &str,
        mark: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE herald_chat_members SET read_seq = $3 \
             WHERE conversation = $1 AND user_id = $2 AND read_seq < $3",
        )
        .bind(conversation)
        .bind(user)
        .bind(mark)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// Adds members (new ones start with everything so far read); answers who was added.
async fn insert_members(
    tx: &mut sqlx::AnyConnection,
    conversation: &str,
    members: &[String],
    now: i64,
) -> Result<Vec<String>, sqlx::Error> {
    let mut added = Vec::new();
    for user in members {
        let inserted = sqlx::query(
            "INSERT INTO herald_chat_members (conversation, user_id, read_seq, joined_ms) \
             SELECT $1, $2, last_seq, $3 FROM herald_conversations WHERE id = $1 \
             ON CONFLICT (conversation, user_id) DO NOTHING",
        )
        .bind(conversation)
        .bind(user)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted > 0 && !added.contains(user) {
            added.push(user.clone());
        }
    }
    Ok(added)
}
