//! The [`Store`](super::Store) handle of a store held by this endpoint: the client's handle
//! type over a [`StoreTarget`] that hands operations straight to the store's task.

use broker_client::store::{OpFuture, StoreTarget};
use broker_wasm::protocol::StoreOp;
use broker_wasm::ErrorCode;
use tokio::sync::oneshot;

use super::{error, StoreHandle};

impl StoreTarget for StoreHandle {
    fn op(&self, op: StoreOp) -> OpFuture {
        let (tx, rx) = oneshot::channel();
        StoreHandle::op(
            self,
            op,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(error(ErrorCode::NoSuchMaster, "the store was closed")))
        })
    }
}
