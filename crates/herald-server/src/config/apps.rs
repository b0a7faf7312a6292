//! `[inbox]` and `[chat]`: the built-in features, on unless switched off.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InboxSection {
    pub enabled: bool,
}

impl Default for InboxSection {
    fn default() -> Self {
        Self { enabled: true }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChatSection {
    pub enabled: bool,
    /// The longest text one message may carry, in characters.
    pub max_text_length: usize,
}

impl Default for ChatSection {
    fn default() -> Self {
        Self {
            enabled: true,
            max_text_length: 4000,
        }
    }
}

/// Longest `chat.max_text_length` accepted: a message is one publication.
const MAX_TEXT_LENGTH: usize = 65_536;

impl ChatSection {
    pub(super) fn check(&self, errors: &mut Vec<String>) {
        if self.max_text_length == 0 || self.max_text_length > MAX_TEXT_LENGTH {
            errors.push(format!(
                "chat.max_text_length: {} must be between 1 and {MAX_TEXT_LENGTH}",
                self.max_text_length
            ));
        }
    }
}

impl super::Config {
    pub fn app_settings(&self) -> herald_apps::Settings {
        herald_apps::Settings {
            inbox: self.inbox.enabled,
            chat: self.chat.enabled,
            max_text_length: self.chat.max_text_length,
        }
    }
}
