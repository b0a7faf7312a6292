//! Herald's proxies to the application backend over HTTP, in Centrifugo's
//! format: each event (`connect`, `refresh`, `subscribe`, `publish`,
//! `sub_refresh`, `rpc`) is a `POST` of a JSON body to the endpoint
//! configured for it, answered with `{"result": ...}`, `{"error": ...}` or
//! `{"disconnect": ...}`. What the bodies mean is the core's business
//! (`herald_core::proxy`); this crate moves them.
//!
//! # Layout
//! - this file: [`HttpProxies`], the [`ProxyTransport`] the server plugs into
//!   its node, and [`ProxyEndpoint`], one event's settings.
//!
//! Every request carries `Content-Type: application/json`, an
//! `X-Herald-Proxy-Kind` header naming the event, and the client's own
//! request headers listed in the endpoint's `http_headers` (a `Cookie`, say,
//! so the backend recognises its session). Each endpoint keeps one HTTP
//! client, so connections to the backend are kept alive and reused. A
//! transport error, a timeout or a status other than 200 is a failure, which
//! the core answers with the protocol's internal error.
#![forbid(unsafe_code)]

use herald_core::durable::BoxFuture;
use herald_core::proxy::{ProxyAnswer, ProxyCall, ProxyKind, ProxyTransport};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

pub const KIND_HEADER: &str = "X-Herald-Proxy-Kind";
const SECONDS: &str = "herald_proxy_duration_seconds";

/// One event's proxy, as configured.
#[derive(Debug, Clone)]
pub struct ProxyEndpoint {
    /// `http://` or `https://` URL the event is POSTed to.
    pub endpoint: String,
    pub timeout: Duration,
    /// Client request headers to forward, by name (any case).
    pub http_headers: Vec<String>,
    /// Headers added to every request (a shared secret, say).
    pub static_headers: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("{kind} proxy endpoint `{endpoint}` must be an http:// or https:// URL")]
    BadEndpoint {
        kind: &'static str,
        endpoint: String,
    },
    #[error("{kind} proxy: could not build an HTTP client: {source}")]
    Client {
        kind: &'static str,
        source: reqwest::Error,
    },
}

/// Which `rpc` methods go to the backend: those without a namespace when
/// `without_namespace` is set, and `ns:method` for each listed namespace.
#[derive(Debug, Clone, Default)]
pub struct RpcRoutes {
    pub without_namespace: bool,
    pub namespaces: HashSet<String>,
}

impl RpcRoutes {
    pub fn proxies(&self, method: &str) -> bool {
        match method.split_once(':') {
            Some((namespace, _)) => self.namespaces.contains(namespace),
            None => self.without_namespace,
        }
    }
}

struct Endpoint {
    url: String,
    timeout: Duration,
    /// Lower case, as the core hands client headers over.
    forward: Vec<String>,
    static_headers: Vec<(String, String)>,
    client: reqwest::Client,
}

/// The configured proxies of one node.
pub struct HttpProxies {
    endpoints: HashMap<ProxyKind, Endpoint>,
    rpc: RpcRoutes,
}

impl HttpProxies {
    pub fn new(
        endpoints: impl IntoIterator<Item = (ProxyKind, ProxyEndpoint)>,
        rpc: RpcRoutes,
    ) -> Result<Self, ProxyError> {
        let mut built = HashMap::new();
        for (kind, settings) in endpoints {
            built.insert(kind, Endpoint::new(kind, settings)?);
        }
        Ok(Self {
            endpoints: built,
            rpc,
        })
    }

    /// Client headers any endpoint forwards, lower case: what a transport
    /// must keep of a connection's request.
    pub fn forwarded_headers(&self) -> HashSet<String> {
        self.endpoints
            .values()
            .flat_map(|e| e.forward.iter().cloned())
            .collect()
    }
}

impl Endpoint {
    fn new(kind: ProxyKind, settings: ProxyEndpoint) -> Result<Self, ProxyError> {
        let url = settings.endpoint;
        if !(url.starts_with("http://") || url.starts_with("https://"))
            || reqwest::Url::parse(&url).is_err()
        {
            return Err(ProxyError::BadEndpoint {
                kind: kind.as_str(),
                endpoint: url,
            });
        }
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(|source| ProxyError::Client {
                kind: kind.as_str(),
                source,
            })?;
        Ok(Self {
            url,
            timeout: settings.timeout,
            forward: settings
                .http_headers
                .iter()
                .map(|name| name.to_ascii_lowercase())
                .collect(),
            static_headers: settings.static_headers,
            client,
        })
    }

    fn request(&self, call: &ProxyCall) -> reqwest::RequestBuilder {
        let mut request = self
            .client
            .post(&self.url)
            .timeout(self.timeout)
            .header("Content-Type", "application/json")
            .header(KIND_HEADER, call.kind.as_str());
        for (name, value) in call.headers.iter() {
            if self.forward.iter().any(|wanted| wanted == name) {
                request = request.header(name.as_str(), value.as_str());
            }
        }
        for (name, value) in &self.static_headers {
            request = request.header(name.as_str(), value.as_str());
        }
        request.body(call.body.clone())
    }
}

impl ProxyTransport for HttpProxies {
    fn enabled(&self, kind: ProxyKind) -> bool {
        self.endpoints.contains_key(&kind)
    }

    fn proxies_rpc(&self, method: &str) -> bool {
        self.enabled(ProxyKind::Rpc) && self.rpc.proxies(method)
    }

    fn call(&self, call: &ProxyCall) -> BoxFuture<'static, ProxyAnswer> {
        let kind = call.kind;
        let Some(endpoint) = self.endpoints.get(&kind) else {
            return Box::pin(std::future::ready(Err(format!(
                "no {} proxy is configured",
                kind.as_str()
            ))));
        };
        let (request, url, timeout) = (
            endpoint.request(call),
            endpoint.url.clone(),
            endpoint.timeout,
        );
        Box::pin(async move {
            let started = Instant::now();
            let answer = send(request, &url, timeout).await;
            ::metrics::histogram!(SECONDS, "kind" => kind.as_str())
                .record(started.elapsed().as_secs_f64());
            answer
        })
    }
}

async fn send(request: reqwest::RequestBuilder, url: &str, timeout: Duration) -> ProxyAnswer {
    let response = request
        .send()
        .await
        .map_err(|e| failure(url, timeout, &e))?;
    let status = response.status();
    if status != reqwest::StatusCode::OK {
        return Err(format!("{url} answered HTTP {status}"));
    }
    response
        .bytes()
        .await
        .map_err(|e| failure(url, timeout, &e))
}

fn failure(url: &str, timeout: Duration, error: &reqwest::Error) -> String {
    if error.is_timeout() {
        format!("{url} did not answer within {} ms", timeout.as_millis())
    } else {
        format!("{url}: {error}")
    }
}

#[cfg(test)]
mod tests;
