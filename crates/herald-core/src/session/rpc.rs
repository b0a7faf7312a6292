//! `rpc`: calls a client makes of the node's extension (`inbox.*`, `chat.*`),
//! or, for the methods `[rpc]` routes there, of the application's backend.

use super::Session;
use crate::extension::Caller;
use crate::proxy::{self, ProxyKind, Verdict};
use herald_protocol::command::RpcRequest;
use herald_protocol::reply::{Reply, RpcResult};
use herald_protocol::{DetailedError, Disconnect, ErrorCode};

impl Session {
    pub(super) fn rpc(&mut self, id: u32, request: RpcRequest<'_>) -> Result<(), Disconnect> {
        let data = request.data.unwrap_or(super::json_null());
        // Herald's own methods come first, so a backend cannot shadow them.
        let extension = self.node.extension().cloned();
        let c = self.connected();
        let caller = Caller {
            user: c.info.user.clone(),
            client: c.info.client.clone(),
        };
        if let Some(call) = extension.and_then(|e| e.rpc(caller, &request.method, data)) {
            self.answer(async move {
                match call.await {
                    Ok(data) => Reply::result(id, "rpc", &RpcResult { data: Some(&data) }),
                    Err(error) => {
                        crate::metrics::count_error(error.code);
                        Reply::error::<DetailedError>(id, &error)
                    }
                }
            });
            return Ok(());
        }
        if !self.node.proxies_rpc(&request.method) {
            tracing::debug!(method = %request.method, "rpc: no such method");
            self.error(id, ErrorCode::METHOD_NOT_FOUND);
            return Ok(());
        }
        let method = request.method.as_str();
        let fields = || serde_json::json!({ "method": method, "data": request.data });
        let Some(answer) = self.consult(ProxyKind::Rpc, method, fields) else {
            return Ok(());
        };
        match proxy::judge::<proxy::RpcResult>(ProxyKind::Rpc, answer) {
            Ok(Verdict::Allowed(result)) => {
                let data = result.data.as_deref();
                self.reply(id, "rpc", &RpcResult { data });
            }
            Ok(Verdict::Refused(error)) => self.error_detailed(id, &error),
            Ok(Verdict::Disconnect(disconnect)) => return Err(disconnect),
            Err(_) => self.error(id, ErrorCode::INTERNAL),
        }
        Ok(())
    }
}
