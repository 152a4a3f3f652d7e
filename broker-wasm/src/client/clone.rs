//! The clones of [`ClientCore`] (ZB-47, ZB-58): attach, snapshot and updates through the
//! replica, reads, writes through the master, retries and final refusals.

#[allow(unused_imports)]
use super::*;

impl ClientCore {
    /// Starts (or restarts) a clone of `store` (ZB-47): it attaches whenever connected,
    /// gets a snapshot and then every update, and reports them as [`Event::StoreChanges`].
    pub fn attach_clone(&mut self, store: &str, opts: CloneOptions) {
        self.attach_clone_from(store, opts, None);
    }

    /// Like [`ClientCore::attach_clone`], starting from a kept state ([`ClientCore::clone_export`]):
    /// readable at once (stale until in sync); the gateway sends only the updates since when
    /// it still has them, else a snapshot that arrives as the difference.
    pub fn attach_clone_from(
        &mut self,
        store: &str,
        opts: CloneOptions,
        saved: Option<SavedReplica>,
    ) {
        let mut replica = Replica::new();
        if let Some(saved) = saved {
            replica.import(saved);
        }
        self.clones.insert(
            store.to_owned(),
            CloneState {
                replica,
                opts,
                disconnected_since: (self.state != State::Open).then_some(self.now_ms),
                retry_at: None,
                changes: true,
                refused: None,
                overlay: Default::default(),
            },
        );
        if self.state != State::Closed {
            self.send_attach(store);
        }
    }

    /// Whether a clone reports its changes (default true). Without them, events still say
    /// when the clone is in sync or was reset, and applying a big snapshot is cheaper.
    pub fn set_clone_changes(&mut self, store: &str, on: bool) {
        if let Some(c) = self.clones.get_mut(store) {
            c.changes = on;
        }
    }

    /// Ends a clone.
    pub fn detach_clone(&mut self, store: &str) {
        if self.clones.remove(store).is_some() && self.state != State::Closed {
            let id = self.request(Request::DetachClone {
                store: store.to_owned(),
            });
            self.clone_requests.insert(id, String::new());
        }
    }

    /// The state of a clone in sync, to keep and restore later (`attach_clone_from`).
    pub fn clone_export(&self, store: &str) -> Option<SavedReplica> {
        self.clones.get(store)?.replica.export()
    }

    /// Attaches `store`: from where its replica is, if it holds a master's state (the
    /// gateway may then send only the updates since), else with a snapshot.
    pub(super) fn send_attach(&mut self, store: &str) {
        let since = self.clones.get_mut(store).and_then(|c| {
            c.retry_at = None;
            c.replica.begin_catch_up()
        });
        let request = match since {
            Some((master, seq)) => Request::AttachCloneSince {
                store: store.to_owned(),
                master,
                seq,
            },
            None => Request::AttachClone {
                store: store.to_owned(),
            },
        };
        let id = self.request(request);
        self.clone_requests.insert(id, store.to_owned());
    }

    /// Attaches `store` with a snapshot (the replica could not be brought up to date).
    pub(super) fn send_attach_snapshot(&mut self, store: &str) {
        if let Some(c) = self.clones.get_mut(store) {
            c.retry_at = None;
            c.replica.unsync();
        }
        let id = self.request(Request::AttachClone {
            store: store.to_owned(),
        });
        self.clone_requests.insert(id, store.to_owned());
    }

    /// The replica of a clone, if it may be read now (ZB-47, ZB-55): `stale_data` before the
    /// first snapshot and once the connection has been gone longer than the stale interval;
    /// the refusal itself (e.g. `unauthorized`) if the gateway refused the clone for good.
    pub fn clone_replica(&self, store: &str) -> Result<&Replica, ErrorInfo> {
        let c = self
            .clones
            .get(store)
            .ok_or_else(|| store_error(ErrorCode::NoSuchMaster, format!("no clone of {store}")))?;
        if let Some(e) = &c.refused {
            return Err(e.clone());
        }
        if c.replica.master().is_none() {
            return Err(store_error(
                ErrorCode::StaleData,
                format!("the clone of {store} has not synchronised yet"),
            ));
        }
        if let Some(since) = c.disconnected_since {
            let stale = c.opts.stale_interval_ms;
            if stale >= 0.0 && self.now_ms - since > stale {
                return Err(store_error(
                    ErrorCode::StaleData,
                    format!("the clone of {store} lost its master more than {stale} ms ago"),
                ));
            }
        }
        Ok(&c.replica)
    }

    /// Why the gateway refused the clone of `store` for good ([`is_final_refusal`]), if it
    /// did. Such a clone does not try again (not after a reconnect either); attach it anew to
    /// retry.
    pub fn clone_refusal(&self, store: &str) -> Option<&ErrorInfo> {
        self.clones.get(store)?.refused.as_ref()
    }

    /// One entry of a clone (local read).
    pub fn clone_get(&self, store: &str, key: &Data) -> Result<Option<&Entry>, ErrorInfo> {
        let r = self.clone_replica(store)?;
        Ok(match self.clones[store].overlay.get(key) {
            Some(view) => view,
            None => r.get(key),
        })
    }

    /// True when the clone is in sync and none of this client's requests are in flight
    /// (Broker's `await_idle` for clones, ZB-61).
    pub fn clone_idle(&self, store: &str) -> bool {
        self.clones
            .get(store)
            .is_some_and(|c| c.replica.is_synced())
            && !self.store_requests.values().any(|s| s == store)
    }

    /// Queues a store operation for the gateway. While disconnected, writes wait up to the
    /// clone's mutation buffer interval (default 120 s) and then fail with
    /// `request_timeout`; with an interval of zero they fail at once.
    pub fn store_request(&mut self, store: &str, op: StoreOp) -> Result<u64, ErrorInfo> {
        let buffer_ms = self
            .clones
            .get(store)
            .map(|c| c.opts.mutation_buffer_interval_ms)
            .unwrap_or(CloneOptions::default().mutation_buffer_interval_ms);
        let closed = self.state == State::Closed;
        if closed && buffer_ms <= 0.0 {
            return Err(store_error(
                ErrorCode::RequestTimeout,
                "not connected and the mutation buffer is disabled",
            ));
        }
        let shown = op.clone();
        let id = self.request(Request::Store {
            store: store.to_owned(),
            op,
        });
        if closed {
            self.buffered.push((id, self.now_ms + buffer_ms));
        }
        if let Some(c) = self.clones.get_mut(store).filter(|c| c.opts.optimistic) {
            if let Some((key, value)) = c.overlay.add(&c.replica, id, shown) {
                self.deferred.push(Event::Write {
                    store: store.to_owned(),
                    id,
                    key,
                    value,
                    state: WriteState::Pending,
                });
            }
        }
        Ok(id)
    }

    /// The answer to store request `id` of `store`: an optimistic write is confirmed or
    /// rolled back.
    pub(super) fn settle_write(
        &mut self,
        store: &str,
        id: u64,
        outcome: Result<(), ErrorInfo>,
    ) -> Option<Event> {
        let c = self.clones.get_mut(store)?;
        if c.overlay.is_empty() {
            return None;
        }
        let (key, value) = c.overlay.settle(&c.replica, id)?;
        Some(Event::Write {
            store: store.to_owned(),
            id,
            key,
            value,
            state: match outcome {
                Ok(()) => WriteState::Confirmed,
                Err(e) => WriteState::RolledBack(e),
            },
        })
    }

    /// A clone's view: its entries with the optimistic writes on top, in key order.
    pub fn clone_entries(
        &self,
        store: &str,
    ) -> Result<impl Iterator<Item = (&Data, &Entry)> + '_, ErrorInfo> {
        let r = self.clone_replica(store)?;
        let c = &self.clones[store];
        Ok(c.overlay.iter(r))
    }

    /// Number of entries of a clone's view.
    pub fn clone_len(&self, store: &str) -> Result<usize, ErrorInfo> {
        let r = self.clone_replica(store)?;
        Ok(self.clones[store].overlay.len(r))
    }

    /// Whether `key` of a clone has an optimistic write waiting for the master.
    pub fn clone_pending(&self, store: &str, key: &Data) -> bool {
        self.clones
            .get(store)
            .is_some_and(|c| c.overlay.is_pending(key))
    }

    /// The keys of a clone with optimistic writes waiting, in order.
    pub fn clone_pending_keys(&self, store: &str) -> Vec<Data> {
        self.clones
            .get(store)
            .map(|c| c.overlay.pending_keys())
            .unwrap_or_default()
    }

    /// Advances the clock: retries clones whose attach failed, fails buffered writes that
    /// waited too long.
    pub fn tick(&mut self, now_ms: f64) -> Vec<Event> {
        self.now_ms = now_ms;
        let mut events = Vec::new();
        if self.state != State::Closed {
            let due: Vec<String> = self
                .clones
                .iter()
                .filter(|(_, c)| c.retry_at.is_some_and(|t| t <= now_ms))
                .map(|(n, _)| n.clone())
                .collect();
            for n in due {
                self.send_attach(&n);
            }
        }
        let expired: Vec<u64> = self
            .buffered
            .iter()
            .filter(|(_, t)| *t <= now_ms)
            .map(|(id, _)| *id)
            .collect();
        if !expired.is_empty() {
            self.buffered.retain(|(_, t)| *t > now_ms);
            self.outbox.retain(|o| {
                !matches!(o, Outgoing::Msg(ClientMsg::Request { id, .. }) if expired.contains(id))
            });
            for id in expired {
                self.pending.remove(&id);
                if let Some(store) = self.store_requests.remove(&id) {
                    let late = store_error(
                        ErrorCode::RequestTimeout,
                        "the master stayed unreachable longer than the mutation buffer interval",
                    );
                    events.extend(self.settle_write(&store, id, Err(late)));
                }
                events.push(Event::Response {
                    id,
                    result: Err(Failure::Broker(store_error(
                        ErrorCode::RequestTimeout,
                        "the master stayed unreachable longer than the mutation buffer interval",
                    ))),
                });
            }
        }
        events
    }

    /// True if any clone waits for a timer (so the adapter knows to call [`ClientCore::tick`]).
    pub fn needs_tick(&self) -> bool {
        !self.buffered.is_empty() || self.clones.values().any(|c| c.retry_at.is_some())
    }

    pub(super) fn on_clone_response(
        &mut self,
        store: String,
        result: Result<Response, Failure>,
    ) -> Option<Event> {
        let Err(f) = result else { return None };
        let now = self.now_ms;
        let c = self.clones.get_mut(&store)?;
        let error = match f {
            Failure::Broker(e) => e,
            Failure::Namespace { context, .. } => store_error(ErrorCode::Unspecified, context),
        };
        let permanent = is_final_refusal(error.code);
        if permanent {
            c.retry_at = None;
            c.refused = Some(error.clone());
        } else {
            c.retry_at = Some(now + c.opts.resync_interval_ms.max(0.0));
        }
        Some(Event::StoreError {
            store,
            error,
            permanent,
        })
    }
}
