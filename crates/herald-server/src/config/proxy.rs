//! The backend proxies, in Centrifugo's vocabulary:
//! `[client.proxy.connect]`, `[client.proxy.refresh]`,
//! `[channel.proxy.subscribe]`, `[channel.proxy.publish]`,
//! `[channel.proxy.sub_refresh]` and `[rpc.proxy]`, switched on per
//! namespace (`subscribe_proxy_enabled`, ...) and per rpc namespace
//! (`[rpc.without_namespace] proxy_enabled`, `[[rpc.namespaces]]`).

use super::{ChannelSection, Config, parse_duration};
use herald_core::proxy::ProxyKind;
use herald_proxy::{HttpProxies, ProxyEndpoint, RpcRoutes};
use serde::Deserialize;
use std::collections::BTreeMap;

/// One event's proxy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxySection {
    pub endpoint: String,
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// Client request headers forwarded to the backend (`Cookie`, ...).
    #[serde(default)]
    pub http_headers: Vec<String>,
    #[serde(default)]
    pub http: HttpOptions,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpOptions {
    /// Headers added to every request, such as a shared secret.
    pub static_headers: BTreeMap<String, String>,
}

fn default_timeout() -> String {
    "1s".into()
}

/// `[client.proxy]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientProxies {
    pub connect: Option<ProxySection>,
    pub refresh: Option<ProxySection>,
}

/// `[channel.proxy]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelProxies {
    pub subscribe: Option<ProxySection>,
    pub publish: Option<ProxySection>,
    pub sub_refresh: Option<ProxySection>,
}

/// `[rpc]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RpcSection {
    pub proxy: Option<ProxySection>,
    pub without_namespace: RpcOptions,
    pub namespaces: Vec<RpcNamespace>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RpcOptions {
    pub proxy_enabled: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcNamespace {
    pub name: String,
    #[serde(default)]
    pub proxy_enabled: bool,
}

impl ProxySection {
    fn endpoint(&self, key: &str) -> Result<ProxyEndpoint, String> {
        Ok(ProxyEndpoint {
            endpoint: self.endpoint.clone(),
            timeout: parse_duration(&format!("{key}.timeout"), &self.timeout)?,
            http_headers: self.http_headers.clone(),
            static_headers: self.http.static_headers.clone().into_iter().collect(),
        })
    }
}

impl Config {
    /// Every configured proxy with its config key.
    fn proxy_sections(&self) -> Vec<(ProxyKind, &'static str, &ProxySection)> {
        let client = &self.client.proxy;
        let channel = &self.channel.proxy;
        [
            (ProxyKind::Connect, "client.proxy.connect", &client.connect),
            (ProxyKind::Refresh, "client.proxy.refresh", &client.refresh),
            (
                ProxyKind::Subscribe,
                "channel.proxy.subscribe",
                &channel.subscribe,
            ),
            (
                ProxyKind::Publish,
                "channel.proxy.publish",
                &channel.publish,
            ),
            (
                ProxyKind::SubRefresh,
                "channel.proxy.sub_refresh",
                &channel.sub_refresh,
            ),
            (ProxyKind::Rpc, "rpc.proxy", &self.rpc.proxy),
        ]
        .into_iter()
        .filter_map(|(kind, key, section)| Some((kind, key, section.as_ref()?)))
        .collect()
    }

    /// The node's proxies, or `None` when none is configured.
    pub fn proxies(&self) -> Result<Option<HttpProxies>, String> {
        let sections = self.proxy_sections();
        if sections.is_empty() {
            return Ok(None);
        }
        let mut endpoints = Vec::with_capacity(sections.len());
        for (kind, key, section) in sections {
            endpoints.push((kind, section.endpoint(key)?));
        }
        let rpc = RpcRoutes {
            without_namespace: self.rpc.without_namespace.proxy_enabled,
            namespaces: self
                .rpc
                .namespaces
                .iter()
                .filter(|ns| ns.proxy_enabled)
                .map(|ns| ns.name.clone())
                .collect(),
        };
        HttpProxies::new(endpoints, rpc)
            .map(Some)
            .map_err(|e| e.to_string())
    }

    /// Each proxy problem as its own line.
    pub(super) fn check_proxies(&self, errors: &mut Vec<String>) {
        for (kind, key, section) in self.proxy_sections() {
            match section.endpoint(key) {
                Ok(endpoint) => {
                    if let Err(e) = HttpProxies::new([(kind, endpoint)], RpcRoutes::default()) {
                        errors.push(format!("{key}.endpoint: {e}"));
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        let channel = &self.channel.proxy;
        let needs = [
            (
                "subscribe_proxy_enabled",
                "channel.proxy.subscribe",
                channel.subscribe.is_some(),
            ),
            (
                "publish_proxy_enabled",
                "channel.proxy.publish",
                channel.publish.is_some(),
            ),
            (
                "sub_refresh_proxy_enabled",
                "channel.proxy.sub_refresh",
                channel.sub_refresh.is_some(),
            ),
        ];
        for (key, options) in namespaces(&self.channel) {
            let enabled = [
                options.subscribe_proxy_enabled,
                options.publish_proxy_enabled,
                options.sub_refresh_proxy_enabled,
            ];
            for ((option, section, configured), on) in needs.iter().zip(enabled) {
                if on && !configured {
                    errors.push(format!(
                        "{key}.{option}: no [{section}] endpoint is configured"
                    ));
                }
            }
        }
        let rpc_on = self.rpc.without_namespace.proxy_enabled
            || self.rpc.namespaces.iter().any(|ns| ns.proxy_enabled);
        if rpc_on && self.rpc.proxy.is_none() {
            errors
                .push("rpc: proxy_enabled is set but no [rpc.proxy] endpoint is configured".into());
        }
        for (index, namespace) in self.rpc.namespaces.iter().enumerate() {
            let valid = namespace.name.len() >= 2
                && namespace
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !valid {
                errors.push(format!(
                    "rpc.namespaces[{index}].name: `{}` must be 2 or more of a-z, A-Z, 0-9, -, _ and .",
                    namespace.name
                ));
            }
        }
    }
}

/// Every namespace's options with its config key.
fn namespaces(channel: &ChannelSection) -> Vec<(String, &herald_core::ChannelOptions)> {
    let mut all = vec![(
        "channel.without_namespace".to_string(),
        &channel.without_namespace,
    )];
    for (index, (name, options)) in channel.namespaces.iter().enumerate() {
        all.push((format!("channel.namespaces[{index}] ({name})"), options));
    }
    all
}
