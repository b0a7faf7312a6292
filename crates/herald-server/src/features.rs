//! Starting the built-in features beside the node: the inbox and chat, and
//! webhooks, which share one database.

use crate::config::Config;
use crate::server::StartError;
use herald_apps::Apps;
use herald_core::Node;
use herald_core::extension::Observer;
use herald_webhooks::Webhooks;
use std::sync::Arc;

pub struct Features {
    pub apps: Option<Arc<Apps>>,
    pub webhooks: Option<Webhooks>,
}

/// Opens the app database when a feature needs it, starts webhooks, and plugs
/// both into `node`.
pub async fn start(config: &Config, node: &Arc<Node>) -> Result<Features, StartError> {
    let Some(db) = crate::storage::open_app_store(config).await? else {
        return Ok(Features {
            apps: None,
            webhooks: None,
        });
    };
    let webhooks = if config.webhooks.enabled() {
        let settings = config
            .webhooks
            .settings(&node.id)
            .map_err(StartError::Config)?;
        let webhooks = Webhooks::start(settings, db.pool.clone())
            .await
            .map_err(|e| StartError::Storage(e.to_string()))?;
        tracing::info!(url = %config.webhooks.url, "webhooks on");
        node.set_observer(Arc::new(WebhookObserver(webhooks.clone())));
        Some(webhooks)
    } else {
        None
    };
    let settings = config.app_settings();
    // App events (`chat.message`, `notification.read`) reach webhooks
    // through the node's observer, as connection events do.
    let apps = (settings.inbox || settings.chat).then(|| Apps::install(settings, db, node));
    Ok(Features { apps, webhooks })
}

struct WebhookObserver(Webhooks);

impl Observer for WebhookObserver {
    fn wants(&self, event: &str) -> bool {
        self.0.wants(event)
    }

    fn observe(&self, event: &'static str, data: serde_json::Value) {
        self.0.emit(event, data);
    }
}
