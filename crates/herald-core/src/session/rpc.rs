//! `rpc`: calls a client makes of the node's extension (`inbox.*`, `chat.*`).

use super::Session;
use crate::extension::Caller;
use herald_protocol::command::RpcRequest;
use herald_protocol::reply::{Reply, RpcResult};
use herald_protocol::{DetailedError, ErrorCode};

impl Session {
    pub(super) fn rpc(&mut self, id: u32, request: RpcRequest<'_>) {
        let Some(extension) = self.node.extension().cloned() else {
            self.error(id, ErrorCode::METHOD_NOT_FOUND);
            return;
        };
        let c = self.connected();
        let caller = Caller {
            user: c.info.user.clone(),
            client: c.info.client.clone(),
        };
        let data = request.data.unwrap_or(super::json_null());
        let Some(call) = extension.rpc(caller, &request.method, data) else {
            tracing::debug!(method = %request.method, "rpc: no such method");
            self.error(id, ErrorCode::METHOD_NOT_FOUND);
            return;
        };
        self.answer(async move {
            match call.await {
                Ok(data) => Reply::result(id, "rpc", &RpcResult { data: Some(&data) }),
                Err(error) => {
                    crate::metrics::count_error(error.code);
                    Reply::error::<DetailedError>(id, &error)
                }
            }
        });
    }
}
