//! Notifications: each user's durable inbox, its unread count and preferences.
//!
//! Every change commits first, then goes out on the user's personal channel:
//! the new notification, and the unread count after any change, so every tab
//! shows the same number whichever tab, device or backend made the change.

use crate::error::{AppResult, bad_request, database};
use crate::store::{data_from_text, data_to_text, placeholders, validate_data};
use crate::{Apps, personal_channel};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use std::collections::HashMap;

pub const MAX_USERS: usize = 1000;
pub const MAX_IDS: usize = 1000;
const MAX_TITLE: usize = 200;
const MAX_MESSAGE: usize = 2000;
const MAX_CATEGORY: usize = 64;
const DEFAULT_LIMIT: i64 = 20;
const MAX_LIMIT: i64 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Success,
    Warning,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Success => "success",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    pub id: i64,
    pub user: String,
    pub title: String,
    pub message: String,
    pub level: String,
    pub category: String,
    pub data: Value,
    pub read: bool,
    pub archived: bool,
    pub created_at: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyRequest {
    pub users: Vec<String>,
    pub title: String,
    #[serde(default)]
    pub message: String,
    #[serde(default = "info")]
    pub level: Level,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub data: Value,
    pub dedupe_key: Option<String>,
}

fn info() -> Level {
    Level::Info
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    pub unread_only: bool,
    pub level: Option<Level>,
    pub category: Option<String>,
    pub include_archived: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Read,
    Unread,
    Archive,
    Delete,
}

/// Which of a user's notifications an update touches.
#[derive(Debug)]
pub enum Target {
    Ids(Vec<i64>),
    All,
}

impl Target {
    /// `{ids}` or `{all: true}`, exactly one of them.
    pub fn from_parts(ids: Option<Vec<i64>>, all: bool) -> AppResult<Self> {
        match (ids, all) {
            (Some(_), true) => Err(bad_request("give either ids or all, not both")),
            (Some(ids), false) if ids.len() > MAX_IDS => {
                Err(bad_request(format!("ids: at most {MAX_IDS} per call")))
            }
            (Some(ids), false) => Ok(Target::Ids(ids)),
            (None, true) => Ok(Target::All),
            (None, false) => Err(bad_request("give ids or all: true")),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Preferences {
    pub muted_levels: Vec<Level>,
    pub muted_categories: Vec<String>,
}

impl Preferences {
    fn mutes(&self, level: Level, category: &str) -> bool {
        self.muted_levels.contains(&level) || self.muted_categories.iter().any(|c| c == category)
    }
}

const COLUMNS: &str =
    "id, user_id, title, message, level, category, data, is_read, archived, created_ms";

fn notification(row: &AnyRow) -> Result<Notification, sqlx::Error> {
    let data: Option<String> = row.try_get("data")?;
    Ok(Notification {
        id: row.try_get("id")?,
        user: row.try_get("user_id")?,
        title: row.try_get("title")?,
        message: row.try_get("message")?,
        level: row.try_get("level")?,
        category: row.try_get("category")?,
        data: data_from_text(data),
        read: row.try_get::<i64, _>("is_read")? != 0,
        archived: row.try_get::<i64, _>("archived")? != 0,
        created_at: row.try_get("created_ms")?,
    })
}

/// The opaque cursor after `id`, and back.
fn cursor_after(id: i64) -> String {
    format!("n{id}")
}

fn cursor_id(cursor: &str) -> AppResult<i64> {
    cursor
        .strip_prefix('n')
        .and_then(|id| id.parse::<i64>().ok())
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            bad_request(format!(
                "cursor: {cursor:?} is not a cursor this server gave"
            ))
        })
}

fn validate(request: &NotifyRequest) -> AppResult<()> {
    if request.users.is_empty() || request.users.len() > MAX_USERS {
        return Err(bad_request(format!("users: give 1 to {MAX_USERS} users")));
    }
    if request.users.iter().any(String::is_empty) {
        return Err(bad_request("users: a user id is empty"));
    }
    if request.title.trim().is_empty() || request.title.chars().count() > MAX_TITLE {
        return Err(bad_request(format!("title: 1 to {MAX_TITLE} characters")));
    }
    if request.message.chars().count() > MAX_MESSAGE {
        return Err(bad_request(format!(
            "message: at most {MAX_MESSAGE} characters"
        )));
    }
    if request.category.chars().count() > MAX_CATEGORY {
        return Err(bad_request(format!(
            "category: at most {MAX_CATEGORY} characters"
        )));
    }
    validate_data(&request.data)
}

impl Apps {
    /// Stores a notification for each user and delivers it live; answers one
    /// id per user, in order (the first one's for a repeated `dedupe_key`).
    pub async fn notify(&self, request: NotifyRequest) -> AppResult<Vec<i64>> {
        validate(&request)?;
        let now = herald_core::history::now_ms() as i64;
        let data = data_to_text(&request.data);
        // Read before the transaction: on SQLite a transaction that reads and
        // then writes fails at once when another writer got in between.
        let preferences = load_preferences(&self.db.pool, &request.users)
            .await
            .map_err(database("notify"))?;
        let mut tx = self.db.pool.begin().await.map_err(database("notify"))?;
        let mut ids = Vec::with_capacity(request.users.len());
        let mut added = Vec::new();
        for user in &request.users {
            let muted = preferences
                .get(user)
                .is_some_and(|p| p.mutes(request.level, &request.category));
            let inserted: Option<i64> = sqlx::query_scalar(
                "INSERT INTO herald_notifications \
                 (user_id, title, message, level, category, data, dedupe_key, is_read, archived, created_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9) \
                 ON CONFLICT (user_id, dedupe_key) DO NOTHING RETURNING id",
            )
            .bind(user)
            .bind(&request.title)
            .bind(&request.message)
            .bind(request.level.as_str())
            .bind(&request.category)
            .bind(&data)
            .bind(&request.dedupe_key)
            .bind(muted as i64)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(database("notify"))?;
            let id = match inserted {
                Some(id) => {
                    added.push((user, id, muted));
                    id
                }
                None => sqlx::query_scalar(
                    "SELECT id FROM herald_notifications WHERE user_id = $1 AND dedupe_key = $2",
                )
                .bind(user)
                .bind(&request.dedupe_key)
                .fetch_one(&mut *tx)
                .await
                .map_err(database("notify"))?,
            };
            ids.push(id);
        }
        tx.commit().await.map_err(database("notify"))?;
        ::metrics::counter!(crate::metrics::NOTIFICATIONS).increment(added.len() as u64);
        for (user, id, muted) in added {
            if muted {
                continue;
            }
            let notification = Notification {
                id,
                user: user.clone(),
                title: request.title.clone(),
                message: request.message.clone(),
                level: request.level.as_str().into(),
                category: request.category.clone(),
                data: request.data.clone(),
                read: false,
                archived: false,
                created_at: now,
            };
            let channel = personal_channel(user);
            self.push(
                &channel,
                &json!({"type": "notification", "notification": notification}),
            )
            .await;
            self.push_unread_count(user).await;
        }
        Ok(ids)
    }

    /// A page of `user`'s notifications, newest first.
    pub async fn list_notifications(&self, user: &str, query: ListQuery) -> AppResult<Value> {
        let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(bad_request(format!("limit: 1 to {MAX_LIMIT}")));
        }
        let before = query.cursor.as_deref().map(cursor_id).transpose()?;
        let mut sql = format!("SELECT {COLUMNS} FROM herald_notifications WHERE user_id = $1");
        let mut next = 2;
        let mut clause = |sql: &mut String, condition: &str| {
            sql.push_str(&format!(" AND {condition} ${next}"));
            next += 1;
        };
        if before.is_some() {
            clause(&mut sql, "id <");
        }
        if query.level.is_some() {
            clause(&mut sql, "level =");
        }
        if query.category.is_some() {
            clause(&mut sql, "category =");
        }
        if query.unread_only {
            sql.push_str(" AND is_read = 0");
        }
        if !query.include_archived {
            sql.push_str(" AND archived = 0");
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", limit + 1));
        let mut select = sqlx::query(AssertSqlSafe(sql)).bind(user);
        if let Some(before) = before {
            select = select.bind(before);
        }
        if let Some(level) = query.level {
            select = select.bind(level.as_str());
        }
        if let Some(category) = query.category {
            select = select.bind(category);
        }
        let rows = select
            .fetch_all(&self.db.pool)
            .await
            .map_err(database("inbox list"))?;
        let mut notifications = rows
            .iter()
            .map(notification)
            .collect::<Result<Vec<_>, _>>()
            .map_err(database("inbox list"))?;
        let more = notifications.len() > limit as usize;
        notifications.truncate(limit as usize);
        let next_cursor = more
            .then(|| notifications.last().map(|n| cursor_after(n.id)))
            .flatten();
        Ok(json!({"notifications": notifications, "next_cursor": next_cursor}))
    }

    /// Applies `action` to `user`'s notifications; answers how many changed,
    /// and tells every tab the new unread count when any did.
    pub async fn update_notifications(
        &self,
        user: &str,
        action: Action,
        target: Target,
    ) -> AppResult<u64> {
        let statement = match action {
            Action::Read => {
                "UPDATE herald_notifications SET is_read = 1 WHERE user_id = $1 AND is_read = 0"
            }
            Action::Unread => {
                "UPDATE herald_notifications SET is_read = 0 WHERE user_id = $1 AND is_read = 1"
            }
            Action::Archive => {
                "UPDATE herald_notifications SET archived = 1 WHERE user_id = $1 AND archived = 0"
            }
            Action::Delete => "DELETE FROM herald_notifications WHERE user_id = $1",
        };
        let updated = match &target {
            Target::All => sqlx::query(statement)
                .bind(user)
                .execute(&self.db.pool)
                .await
                .map_err(database("inbox update"))?
                .rows_affected(),
            Target::Ids(ids) if ids.is_empty() => 0,
            Target::Ids(ids) => {
                let sql = format!("{statement} AND id IN ({})", placeholders(2, ids.len()));
                let mut query = sqlx::query(AssertSqlSafe(sql)).bind(user);
                for id in ids {
                    query = query.bind(*id);
                }
                query
                    .execute(&self.db.pool)
                    .await
                    .map_err(database("inbox update"))?
                    .rows_affected()
            }
        };
        if updated > 0 {
            self.push_unread_count(user).await;
            if action == Action::Read {
                self.event("notification.read", || match &target {
                    Target::All => json!({"user": user, "all": true}),
                    Target::Ids(ids) => json!({"user": user, "ids": ids}),
                });
            }
        }
        Ok(updated)
    }

    pub async fn unread_notifications(&self, user: &str) -> AppResult<i64> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM herald_notifications \
             WHERE user_id = $1 AND is_read = 0 AND archived = 0",
        )
        .bind(user)
        .fetch_one(&self.db.pool)
        .await
        .map_err(database("inbox unread count"))
    }

    /// Counts and pushes under the user's lock, so a later push never
    /// carries an older count.
    async fn push_unread_count(&self, user: &str) {
        let _ordered = self.ordered.lock(&format!("inbox:{user}")).await;
        match self.unread_notifications(user).await {
            Ok(count) => {
                let push = json!({"type": "unread_count", "count": count});
                self.push(&personal_channel(user), &push).await;
            }
            Err(error) => tracing::warn!(%user, %error, "unread count not pushed"),
        }
    }

    /// `user`'s preferences, after replacing them with `set` when given.
    pub async fn inbox_preferences(
        &self,
        user: &str,
        set: Option<Preferences>,
    ) -> AppResult<Preferences> {
        if let Some(preferences) = set {
            sqlx::query(
                "INSERT INTO herald_inbox_preferences (user_id, muted_levels, muted_categories) \
                 VALUES ($1, $2, $3) ON CONFLICT (user_id) DO UPDATE \
                 SET muted_levels = excluded.muted_levels, muted_categories = excluded.muted_categories",
            )
            .bind(user)
            .bind(list_text(&preferences.muted_levels))
            .bind(list_text(&preferences.muted_categories))
            .execute(&self.db.pool)
            .await
            .map_err(database("inbox preferences"))?;
            return Ok(preferences);
        }
        let mut all = load_preferences(&self.db.pool, &[user.to_string()])
            .await
            .map_err(database("inbox preferences"))?;
        Ok(all.remove(user).unwrap_or_default())
    }
}

fn list_text(list: &impl Serialize) -> String {
    serde_json::to_string(list).expect("a list of strings serializes")
}

async fn load_preferences(
    pool: &sqlx::AnyPool,
    users: &[String],
) -> Result<HashMap<String, Preferences>, sqlx::Error> {
    let sql = format!(
        "SELECT user_id, muted_levels, muted_categories FROM herald_inbox_preferences \
         WHERE user_id IN ({})",
        placeholders(1, users.len())
    );
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for user in users {
        query = query.bind(user);
    }
    let rows = query.fetch_all(pool).await?;
    let mut preferences = HashMap::new();
    for row in rows {
        let levels: String = row.try_get("muted_levels")?;
        let categories: String = row.try_get("muted_categories")?;
        preferences.insert(
            row.try_get("user_id")?,
            Preferences {
                muted_levels: serde_json::from_str(&levels).unwrap_or_default(),
                muted_categories: serde_json::from_str(&categories).unwrap_or_default(),
            },
        );
    }
    Ok(preferences)
}
