//! Metric names of the inbox and chat.

pub const NOTIFICATIONS: &str = "herald_notifications_total";
pub const CHAT_MESSAGES: &str = "herald_chat_messages_total";
pub const DATABASE_ERRORS: &str = "herald_app_database_errors_total";
pub const PUSH_ERRORS: &str = "herald_app_push_errors_total";
