//! The requests of a native client (stores, namespaces, peering): checked against the
//! connection's grants and limits, then answered now or by a task once the answer exists.

use std::sync::Arc;
use std::time::Duration;

use broker_wasm::dbr::DbrCode;
use broker_wasm::protocol::{self, Encoding, ErrorInfo, Failure, Request, Response, ServerMsg};
use broker_wasm::ErrorCode;
use bytes::Bytes;
use tokio::sync::mpsc;

use super::Session;
use crate::hub::encode_server_msg;
use crate::metrics::Metrics;
use crate::namespace::{self, Outcome};
use crate::state::Shared;

impl Session {
    pub(super) fn request(&mut self, id: u64, request: Request) {
        // No sender for later answers here (the handlers below take their own).
        let respond = move |result: Result<Response, Failure>| ServerMsg::Response { id, result };
        let shared = self.shared.clone();
        if let Some(failure) = crate::auth::check_request(&self.who.grants, &request) {
            Metrics::add(&shared.metrics.denied_total, 1);
            return self.send(respond(Err(failure)));
        }
        if request_too_deep(&request) {
            Metrics::add(&shared.metrics.errors_total, 1);
            let failure = match request {
                Request::Namespace(_) => {
                    namespace::failure(DbrCode::Invalid, broker_wasm::data::too_deep_text())
                }
                _ => broker_failure(ErrorCode::InvalidData, broker_wasm::data::too_deep_text()),
            };
            return self.send(respond(Err(failure)));
        }
        match request {
            Request::Peers => {
                self.send(respond(Ok(Response::Peers(shared.peering.peers()))));
            }
            Request::PeerSubscriptions => {
                self.send(respond(Ok(Response::Topics(
                    shared.peering.peer_subscriptions(),
                ))));
            }
            r @ (Request::Peer { .. } | Request::Unpeer { .. }) => self.peering_request(id, r),
            Request::ZeekUplink(spec) => {
                let result = crate::uplink::start(&shared, spec)
                    .map(|()| Response::Done)
                    .map_err(|e| broker_failure(ErrorCode::PeerInvalid, e));
                self.send(respond(result));
            }
            Request::ZeekUnlink { url } => {
                let result = if crate::uplink::stop(&shared, &url) {
                    Ok(Response::Done)
                } else {
                    Err(broker_failure(
                        ErrorCode::PeerInvalid,
                        format!("no zeek uplink to {url}"),
                    ))
                };
                self.send(respond(result));
            }
            Request::ZeekUplinks => {
                self.send(respond(Ok(Response::Uplinks(shared.up.infos()))));
            }
            Request::Stores => {
                let mut names = shared.stores.names();
                names.retain(|n| crate::auth::allowed(&self.who.grants.store_read, n));
                self.send(respond(Ok(Response::Names { names, done: true })));
            }
            Request::AttachMaster {
                store,
                backend,
                options,
            } => self.attach_master(id, store, backend, options),
            Request::AttachClone { store } => self.attach_clone(id, store, None),
            Request::AttachCloneSince { store, master, seq } => {
                self.attach_clone(id, store, Some((master, seq)))
            }
            Request::DetachClone { store } => {
                if let Some((t, _)) = self.clones.remove(&store) {
                    t.cancel();
                }
                self.send(respond(Ok(Response::Done)));
            }
            Request::Store { store, op } => self.store_op(id, store, op),
            Request::Namespace(op) => self.namespace_op(id, op),
        }
    }

    /// What a request's handler answers with: the response for a result, the shared state,
    /// and a sender for answers that come later (they wait for room in the queue).
    fn answer(
        &self,
        id: u64,
    ) -> (
        impl Fn(Result<Response, Failure>) -> ServerMsg + Copy + Send + 'static,
        Arc<Shared>,
        Later,
    ) {
        let respond = move |result: Result<Response, Failure>| ServerMsg::Response { id, result };
        let later = Later {
            tx: self.tx.clone(),
            encoding: self.encoding,
        };
        (respond, self.shared.clone(), later)
    }

    /// `peer` and `unpeer` requests (ZB-03, ZB-05): answered when the peering settles.
    fn peering_request(&mut self, id: u64, request: Request) {
        let (respond, shared, reply) = self.answer(id);
        match request {
            Request::Peer { host, port, retry } => {
                let retry = retry
                    .filter(|r| r.0 > 0)
                    .map(|r| Duration::from_nanos(r.0 as u64));
                let s = shared.clone();
                shared.tasks.spawn(async move {
                    let result = crate::peering::dial::peer(&s, &host, port, retry)
                        .await
                        .map(|_| Response::Done)
                        .map_err(|e| broker_failure(e.code(), e.to_string()));
                    reply.send(respond(result)).await;
                });
            }
            Request::Unpeer { host, port } => {
                let s = shared.clone();
                shared.tasks.spawn(async move {
                    let result = s
                        .peering
                        .unpeer(&host, port)
                        .await
                        .map(|_| Response::Done)
                        .map_err(|e| broker_failure(e.code(), e.to_string()));
                    reply.send(respond(result)).await;
                });
            }
            _ => unreachable!("only peer and unpeer come here"),
        }
    }

    fn attach_master(
        &mut self,
        id: u64,
        store: String,
        backend: protocol::Backend,
        options: broker_wasm::Data,
    ) {
        let (respond, shared, reply) = self.answer(id);
        if !shared.config.client_masters {
            self.send(respond(Err(broker_failure(
                ErrorCode::BadMemberFunctionCall,
                "this gateway does not let clients create master stores \
                 (--client-masters=false)"
                    .into(),
            ))));
            return;
        }
        let s = shared.clone();
        let ticket = self.inflight.ticket();
        shared.tasks.spawn(async move {
            let result = s
                .stores
                .attach_master(&store, backend, &options, true)
                .await
                .map(|_| Response::Done);
            reply.send(respond(crate::store::to_failure(result))).await;
            drop(ticket);
        });
    }

    fn attach_clone(&mut self, id: u64, store: String, since: Option<(broker_wasm::NodeId, u64)>) {
        let (respond, shared, _) = self.answer(id);
        let encoding = self.encoding;
        // Feeds that ended (failed attaches, closed stores) no longer count.
        self.clones.retain(|_, (stop, _)| !stop.is_cancelled());
        let max = shared.config.max_clones;
        if self.clones.len() >= max && !self.clones.contains_key(&store) {
            Metrics::add(&shared.metrics.errors_total, 1);
            return self.send(respond(Err(broker_failure(
                ErrorCode::BackendFailure,
                format!("limit of {max} clones per connection reached (--max-clones)"),
            ))));
        }
        let source = match shared.stores.source(&store) {
            Ok(h) => h,
            Err(e) => return self.send(respond(Err(Failure::Broker(e)))),
        };
        let ticket = self.inflight.ticket();
        let stop = shared.shutdown.child_token();
        let slot = crate::store::FeedSlot::default();
        if let Some((old, _)) = self.clones.insert(store, (stop.clone(), slot.clone())) {
            // Attaching again restarts the feed (a resync after a gap).
            old.cancel();
        }
        let tx = self.tx.clone();
        let rt = tokio::runtime::Handle::current();
        shared.stores.spawn_feed(
            source,
            self.tx.clone(),
            (crate::store::FeedTarget::Client(encoding), since),
            stop,
            Box::new(move |r| {
                // Ahead of the snapshot in the queue: the feed waits for this reply.
                if let Some(b) = encode_server_msg(encoding, &respond(crate::store::to_failure(r)))
                {
                    crate::store::deliver(&rt, &tx, b);
                }
                drop(ticket);
            }),
            Some(slot),
        );
    }

    fn store_op(&mut self, id: u64, store: String, op: protocol::StoreOp) {
        let (respond, shared, _) = self.answer(id);
        let encoding = self.encoding;
        let source = match shared.stores.source(&store) {
            Ok(h) => h,
            Err(e) => return self.send(respond(Err(Failure::Broker(e)))),
        };
        let tx = self.tx.clone();
        let rt = tokio::runtime::Handle::current();
        // With a clone of this store on this connection, the answer travels behind
        // the update the operation caused.
        let slot = self.clones.get(&store).map(|(_, s)| s.clone());
        let ticket = self.inflight.ticket();
        source.op(
            op,
            Box::new(move |r| {
                let msg = respond(crate::store::to_failure(r));
                crate::store::answer(&rt, slot.as_ref(), &tx, encoding, msg);
                drop(ticket);
            }),
        );
    }

    fn namespace_op(&mut self, id: u64, op: protocol::NamespaceOp) {
        let (respond, shared, reply) = self.answer(id);
        // A listing shows only the namespaces this connection may see.
        let grants = matches!(op, protocol::NamespaceOp::List).then(|| self.who.grants.clone());
        let visible = move |r: namespace::Reply| match (r, &grants) {
            (Ok(Response::Names { mut names, done }), Some(g)) => {
                names.retain(|n| crate::auth::may_list_namespace(g, n));
                Ok(Response::Names { names, done })
            }
            (r, _) => r,
        };
        // An answer that waits for a commit (persistent namespaces) is delivered by the
        // database's writer thread after the commit, like a store's.
        // (Made only for such an answer: most are given at once.)
        let call = || -> Box<dyn FnOnce(namespace::Reply) + Send> {
            let (rt, tx, encoding) = (
                tokio::runtime::Handle::current(),
                self.tx.clone(),
                self.encoding,
            );
            let (visible, ticket) = (visible.clone(), self.inflight.ticket());
            Box::new(move |r: namespace::Reply| {
                if let Some(b) = encode_server_msg(encoding, &respond(visible(r))) {
                    crate::store::deliver(&rt, &tx, b);
                }
                drop(ticket);
            })
        };
        let Some(outcome) = shared.namespaces.submit(self.id, id, op, Some(call)) else {
            return;
        };
        match outcome {
            Outcome::Done(result) => self.send(respond(visible(result))),
            outcome => {
                let session = self.id;
                // An answer the backend gives later counts as in flight (backpressure, and
                // the writer gathers such answers into frames); a blocked read/get does not.
                let mut ticket =
                    matches!(outcome, Outcome::Later(_)).then(|| self.inflight.ticket());
                tokio::spawn(async move {
                    let outcome = match outcome {
                        Outcome::Later(pending) => pending.await,
                        other => other,
                    };
                    let result = match outcome {
                        Outcome::Done(result) => Some(result),
                        wait => {
                            drop(ticket.take());
                            // None: the connection ended, nobody to answer.
                            settle(wait, &shared, session, id).await
                        }
                    };
                    if let Some(result) = result {
                        reply.send(respond(visible(result))).await;
                    }
                    drop(ticket);
                });
            }
        }
    }
}

/// Waits for a blocked read/get (DB-15): answered when a put serves it, when it times out,
/// or when it is cancelled.
async fn settle(
    outcome: Outcome,
    shared: &crate::state::Shared,
    session: u64,
    id: u64,
) -> Option<namespace::Reply> {
    match outcome {
        Outcome::Done(result) => Some(result),
        Outcome::Wait { mut rx, timeout } => match timeout {
            None => rx.await.ok(),
            Some(t) => match tokio::time::timeout(t, &mut rx).await {
                Ok(r) => r.ok(),
                Err(_) if shared.namespaces.expire(session, id) => Some(Err(namespace::failure(
                    DbrCode::Timeout,
                    "no value arrived in time",
                ))),
                // Served or cancelled just now: the answer is there.
                Err(_) => rx.await.ok(),
            },
        },
        // The backend decides once; a later outcome is never another `Later`.
        Outcome::Later(_) => None,
    }
}

/// Sends an answer that comes later (from a task), waiting for room in the queue.
struct Later {
    tx: mpsc::Sender<Bytes>,
    encoding: Encoding,
}

impl Later {
    async fn send(self, msg: ServerMsg) {
        if let Some(b) = encode_server_msg(self.encoding, &msg) {
            let _ = self.tx.send(b).await;
        }
    }
}

/// True if a store or namespace request carries a value (or key) nested deeper than
/// [`broker_wasm::data::MAX_NESTING`]: clones and readers with any encoding must be able to
/// decode what a write leaves behind.
fn request_too_deep(request: &Request) -> bool {
    use protocol::{NamespaceOp, StoreOp};
    match request {
        Request::Store { op, .. } => match op {
            StoreOp::Put { key, value, .. }
            | StoreOp::PutUnique { key, value, .. }
            | StoreOp::Append { key, value, .. }
            | StoreOp::Push { key, value, .. }
            | StoreOp::Increment {
                key, amount: value, ..
            }
            | StoreOp::Decrement {
                key, amount: value, ..
            }
            | StoreOp::GetIndexFromValue { key, index: value } => {
                key.too_deep() || value.too_deep()
            }
            StoreOp::InsertInto {
                key, index, value, ..
            } => key.too_deep() || index.too_deep() || value.as_ref().is_some_and(|v| v.too_deep()),
            StoreOp::RemoveFrom { key, index, .. } => key.too_deep() || index.too_deep(),
            StoreOp::Erase { key }
            | StoreOp::Pop { key, .. }
            | StoreOp::Get { key }
            | StoreOp::Exists { key } => key.too_deep(),
            StoreOp::Clear | StoreOp::Keys | StoreOp::AwaitIdle => false,
        },
        Request::Namespace(NamespaceOp::Put { value, .. } | NamespaceOp::Restore { value, .. }) => {
            value.too_deep()
        }
        _ => false,
    }
}

fn broker_failure(code: ErrorCode, context: String) -> Failure {
    Failure::Broker(ErrorInfo { code, context })
}
