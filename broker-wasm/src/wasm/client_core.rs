//! `ClientCore` for JavaScript: the sans-I/O client state machine of [`crate::client`], with
//! values converted to and from JS natively (no JSON round trip per message). The package's
//! `Endpoint` owns the WebSocket and drives this object: frames in, events and frames out,
//! one batch of events per frame. The JS forms of events are in `events.rs`, request
//! arguments in `requests.rs`.

use js_sys::Array;
use wasm_bindgen::prelude::*;

use super::convert::{conversion_error, encode_js_into, from_js, to_js};
use super::events::{events_js, expiry_js};
use super::requests::{get, store_op};
use crate::client::{ClientCore, CloneOptions};
use crate::protocol::Encoding;

fn store_err(e: crate::protocol::ErrorInfo) -> JsValue {
    super::js_error(e.code, e.context)
}

fn topic_err(e: crate::topic::TopicError) -> JsValue {
    super::js_error(crate::ErrorCode::InvalidTopicKey, e.to_string())
}

/// The client state machine, for the package's `Endpoint`.
#[wasm_bindgen(js_name = ClientCore)]
#[derive(Debug)]
pub struct WasmClient {
    core: ClientCore,
    last_topic: Option<(String, JsValue)>,
    /// Reused buffer for encoding published values.
    scratch: Vec<u8>,
}

#[wasm_bindgen(js_class = ClientCore)]
impl WasmClient {
    /// A client speaking the binary (`json = false`) or JSON encoding (not in a build
    /// without the `json-frames` feature, such as the browser build: an error).
    #[wasm_bindgen(constructor)]
    pub fn new(json: bool, name: String) -> Result<WasmClient, JsValue> {
        let encoding = if json {
            if !cfg!(feature = "json-frames") {
                return Err(JsValue::from(js_sys::Error::new(&format!(
                    "encoding \"json\": {}",
                    crate::protocol::NO_JSON_FRAMES
                ))));
            }
            Encoding::Json
        } else {
            Encoding::Binary
        };
        Ok(WasmClient {
            core: ClientCore::new(encoding, name),
            last_topic: None,
            scratch: Vec::new(),
        })
    }

    /// The WebSocket subprotocol to offer.
    #[wasm_bindgen(getter)]
    pub fn subprotocol(&self) -> String {
        self.core.encoding().subprotocol().to_owned()
    }

    #[wasm_bindgen(js_name = setToken)]
    pub fn set_token(&mut self, token: Option<String>) {
        self.core.set_token(token);
    }

    #[wasm_bindgen(js_name = setStatuses)]
    pub fn set_statuses(&mut self, statuses: bool) {
        self.core.set_statuses(statuses);
    }

    /// Names this client across its connections and turns resuming on (see `Position`).
    #[wasm_bindgen(js_name = setInstance)]
    pub fn set_instance(&mut self, instance: String) {
        self.core.set_instance(instance);
    }

    /// Where the client is in the gateway's histories: `{epoch, offsets: {prefix: seq}}`.
    #[wasm_bindgen(getter)]
    pub fn position(&self) -> JsValue {
        super::events::position_js(&self.core.position())
    }

    /// Resumes from `position` (as `position` gives it) at the next connection.
    #[wasm_bindgen(js_name = setPosition)]
    pub fn set_position(&mut self, position: &JsValue) -> Result<(), JsValue> {
        self.core
            .set_position(super::events::position_from_js(position)?);
        Ok(())
    }

    /// Resumes from `position` now, for the subscriptions held now.
    #[wasm_bindgen(js_name = resumeFrom)]
    pub fn resume_from(&mut self, position: &JsValue) -> Result<(), JsValue> {
        self.core
            .resume_from(super::events::position_from_js(position)?);
        Ok(())
    }

    /// True between the welcome and the end of the connection.
    #[wasm_bindgen(getter, js_name = isOpen)]
    pub fn is_open(&self) -> bool {
        self.core.is_open()
    }

    /// The socket opened: queues the hello and every subscription.
    #[wasm_bindgen(js_name = onOpen)]
    pub fn on_open(&mut self) {
        self.core.on_open();
    }

    /// The socket closed: events for failed requests, then `disconnected`.
    #[wasm_bindgen(js_name = onClose)]
    pub fn on_close(&mut self) -> Array {
        self.core.set_now(js_sys::Date::now());
        events_js(self.core.on_close(), &mut self.last_topic)
    }

    /// Queues a publish of a JS value (see the mapping table); throws on values with no
    /// Broker type or out of range.
    pub fn publish(&mut self, topic: String, value: &JsValue) -> Result<(), JsValue> {
        if self.core.encoding() == Encoding::Binary {
            // Straight from the JS value to bytes: no Data tree to build and free.
            self.scratch.clear();
            encode_js_into(value, &mut self.scratch, 0)?;
            return self
                .core
                .publish_encoded(&topic, &self.scratch)
                .map_err(topic_err);
        }
        let data = from_js(value)?;
        self.core.publish(topic, data).map_err(topic_err)
    }

    /// Queues `[[topic, value], ...]` in order; all or nothing.
    #[wasm_bindgen(js_name = publishBatch)]
    pub fn publish_batch(&mut self, items: &Array) -> Result<(), JsValue> {
        let binary = self.core.encoding() == Encoding::Binary;
        let mut encoded = Vec::with_capacity(items.length() as usize);
        let mut values = Vec::new();
        for item in items.iter() {
            let pair: Array = item
                .dyn_into()
                .map_err(|_| conversion_error("publishBatch takes [topic, value] pairs"))?;
            let topic = pair
                .get(0)
                .as_string()
                .ok_or_else(|| conversion_error("publishBatch: a topic must be a string"))?;
            crate::topic::validate_user_topic(&topic).map_err(topic_err)?;
            if binary {
                let mut bytes = Vec::new();
                encode_js_into(&pair.get(1), &mut bytes, 0)?;
                encoded.push((topic, bytes));
            } else {
                values.push((topic, from_js(&pair.get(1))?));
            }
        }
        // Everything converted: queue it all (all or nothing).
        for (topic, bytes) in encoded {
            self.core
                .publish_encoded(&topic, &bytes)
                .map_err(topic_err)?;
        }
        for (topic, data) in values {
            self.core.publish(topic, data).map_err(topic_err)?;
        }
        Ok(())
    }

    /// A new local subscriber; returns its id.
    #[wasm_bindgen(js_name = addSubscriber)]
    pub fn add_subscriber(&mut self, topics: Vec<String>) -> Result<u32, JsValue> {
        self.core.add_subscriber(&topics).map_err(topic_err)
    }

    #[wasm_bindgen(js_name = addTopics)]
    pub fn add_topics(&mut self, id: u32, topics: Vec<String>) -> Result<(), JsValue> {
        self.core.add_topics(id, &topics).map_err(topic_err)
    }

    #[wasm_bindgen(js_name = removeTopics)]
    pub fn remove_topics(&mut self, id: u32, topics: Vec<String>) {
        self.core.remove_topics(id, &topics);
    }

    #[wasm_bindgen(js_name = removeSubscriber)]
    pub fn remove_subscriber(&mut self, id: u32) {
        self.core.remove_subscriber(id);
    }

    /// The prefixes the gateway is asked to send.
    pub fn subscriptions(&self) -> Vec<String> {
        self.core.subscriptions()
    }

    /// Queues a request and returns its id. `kind`: `peers`, `peerSubscriptions`,
    /// `peer` (`{host, port, retryMs}`), `unpeer` (`{host, port}`), `namespace` (`{op, ...}`,
    /// see `namespace_op`).
    pub fn request(&mut self, kind: &str, args: &JsValue) -> Result<f64, JsValue> {
        let request = super::requests::request(kind, args)?;
        Ok(self.core.request(request) as f64)
    }

    /// Asks the gateway to cancel request `id` (a blocked namespace read/get); its response
    /// still arrives (CANCELLED, or the result sent before the cancel arrived).
    pub fn cancel(&mut self, id: f64) {
        self.core.cancel(id as u64);
    }

    /// Queues a ping; a `pong` event with the returned nonce follows everything sent before.
    pub fn ping(&mut self) -> f64 {
        self.core.ping() as f64
    }

    /// Messages queued for the next frame.
    #[wasm_bindgen(getter)]
    pub fn queued(&self) -> u32 {
        self.core.queued() as u32
    }

    /// Everything queued as one frame (bytes; UTF-8 JSON text for the JSON encoding), or
    /// `undefined`.
    #[wasm_bindgen(js_name = takeFrame)]
    pub fn take_frame(&mut self) -> Option<Vec<u8>> {
        self.core.take_frame()
    }

    // -----------------------------------------------------------------------------------------
    // Stores

    /// Starts a clone (ZB-47). Intervals in seconds: `resyncInterval` (10),
    /// `staleInterval` (300; negative = never stale), `mutationBufferInterval` (120).
    #[wasm_bindgen(js_name = attachClone)]
    pub fn attach_clone(&mut self, store: &str, opts: &JsValue) {
        self.attach_clone_from(store, opts, None);
    }

    /// Like `attachClone`, from a state `cloneExport` gave (a durable clone): readable at
    /// once. Returns false (and attaches from scratch) if `saved` does not decode.
    #[wasm_bindgen(js_name = attachCloneFrom)]
    pub fn attach_clone_from(
        &mut self,
        store: &str,
        opts: &JsValue,
        saved: Option<Vec<u8>>,
    ) -> bool {
        let saved = saved.map(|b| crate::binary::from_slice::<crate::store::SavedReplica>(&b));
        let ok = !matches!(saved, Some(Err(_)));
        let saved = saved.and_then(Result::ok);
        self.core.set_now(js_sys::Date::now());
        let mut o = CloneOptions::default();
        let secs = |name: &str| get(opts, name).as_f64().filter(|v| v.is_finite());
        if let Some(v) = secs("resyncInterval") {
            o.resync_interval_ms = v * 1000.0;
        }
        if let Some(v) = secs("staleInterval") {
            o.stale_interval_ms = v * 1000.0;
        }
        if let Some(v) = secs("mutationBufferInterval") {
            o.mutation_buffer_interval_ms = v * 1000.0;
        }
        o.optimistic = get(opts, "optimistic").is_truthy();
        self.core.attach_clone_from(store, o, saved);
        ok
    }

    /// The clone's state while in sync, to keep (`attachCloneFrom`); undefined otherwise.
    #[wasm_bindgen(js_name = cloneExport)]
    pub fn clone_export(&self, store: &str) -> Option<Vec<u8>> {
        self.core
            .clone_export(store)
            .and_then(|s| crate::binary::to_vec(&s).ok())
    }

    /// Whether the clone reports changes (off: only `synced`/`reset` events).
    #[wasm_bindgen(js_name = setCloneChanges)]
    pub fn set_clone_changes(&mut self, store: &str, on: bool) {
        self.core.set_clone_changes(store, on);
    }

    #[wasm_bindgen(js_name = detachClone)]
    pub fn detach_clone(&mut self, store: &str) {
        self.core.detach_clone(store);
    }

    /// A clone's value for `key`, or undefined; throws `stale_data` (ZB-55).
    #[wasm_bindgen(js_name = cloneGet)]
    pub fn clone_get(&mut self, store: &str, key: &JsValue) -> Result<JsValue, JsValue> {
        self.core.set_now(js_sys::Date::now());
        let key = from_js(key)?;
        Ok(match self.core.clone_get(store, &key).map_err(store_err)? {
            Some(e) => to_js(&e.value),
            None => JsValue::UNDEFINED,
        })
    }

    /// A clone's expiry for `key` (a Timestamp), or undefined.
    #[wasm_bindgen(js_name = cloneExpiry)]
    pub fn clone_expiry(&mut self, store: &str, key: &JsValue) -> Result<JsValue, JsValue> {
        self.core.set_now(js_sys::Date::now());
        let key = from_js(key)?;
        Ok(expiry_js(
            self.core
                .clone_get(store, &key)
                .map_err(store_err)?
                .and_then(|e| e.expiry),
        ))
    }

    #[wasm_bindgen(js_name = cloneHas)]
    pub fn clone_has(&mut self, store: &str, key: &JsValue) -> Result<bool, JsValue> {
        self.core.set_now(js_sys::Date::now());
        let key = from_js(key)?;
        Ok(self
            .core
            .clone_get(store, &key)
            .map_err(store_err)?
            .is_some())
    }

    /// The master update a clone's replica is at (0 before any state).
    #[wasm_bindgen(js_name = cloneSeq)]
    pub fn clone_seq(&self, store: &str) -> f64 {
        self.core
            .clone_replica(store)
            .map_or(0.0, |r| r.seq() as f64)
    }

    /// Number of entries of a clone (0 before the first snapshot).
    #[wasm_bindgen(js_name = cloneSize)]
    pub fn clone_size(&self, store: &str) -> usize {
        self.core.clone_len(store).unwrap_or(0)
    }

    /// Whether `key` of a clone has an optimistic write waiting for the master.
    #[wasm_bindgen(js_name = clonePending)]
    pub fn clone_pending(&self, store: &str, key: &JsValue) -> Result<bool, JsValue> {
        Ok(self.core.clone_pending(store, &from_js(key)?))
    }

    /// The keys of a clone with optimistic writes waiting, in key order.
    #[wasm_bindgen(js_name = clonePendingKeys)]
    pub fn clone_pending_keys(&self, store: &str) -> Array {
        self.core
            .clone_pending_keys(store)
            .iter()
            .map(to_js)
            .collect()
    }

    /// Events API calls caused (an optimistic write), to dispatch like a frame's.
    #[wasm_bindgen(js_name = takeEvents)]
    pub fn take_events(&mut self) -> Array {
        events_js(self.core.take_events(), &mut self.last_topic)
    }

    /// A clone's keys in order, from `start` (index), at most `limit` of them.
    #[wasm_bindgen(js_name = cloneKeys)]
    pub fn clone_keys(
        &mut self,
        store: &str,
        start: usize,
        limit: usize,
    ) -> Result<Array, JsValue> {
        self.core.set_now(js_sys::Date::now());
        Ok(self
            .core
            .clone_entries(store)
            .map_err(store_err)?
            .skip(start)
            .take(limit)
            .map(|(k, _)| to_js(k))
            .collect())
    }

    /// A clone's `[key, value]` pairs in key order, from `start`, at most `limit`.
    #[wasm_bindgen(js_name = cloneEntries)]
    pub fn clone_entries(
        &mut self,
        store: &str,
        start: usize,
        limit: usize,
    ) -> Result<Array, JsValue> {
        self.core.set_now(js_sys::Date::now());
        Ok(self
            .core
            .clone_entries(store)
            .map_err(store_err)?
            .skip(start)
            .take(limit)
            .map(|(k, e)| {
                let pair = Array::new();
                pair.push(&to_js(k));
                pair.push(&to_js(&e.value));
                JsValue::from(pair)
            })
            .collect())
    }

    /// `get_index_from_value` on a clone's local value (ZB-55): undefined if the key is
    /// absent or the index is not there; throws `type_clash` for non-containers.
    #[wasm_bindgen(js_name = cloneIndex)]
    pub fn clone_index(
        &mut self,
        store: &str,
        key: &JsValue,
        index: &JsValue,
    ) -> Result<JsValue, JsValue> {
        self.core.set_now(js_sys::Date::now());
        let (key, index) = (from_js(key)?, from_js(index)?);
        let Some(e) = self.core.clone_get(store, &key).map_err(store_err)? else {
            return Ok(JsValue::UNDEFINED);
        };
        match crate::store::index_of(&e.value, &index) {
            Ok(v) => Ok(to_js(&v)),
            Err(e) if e.code == crate::ErrorCode::NoSuchKey => Ok(JsValue::UNDEFINED),
            Err(e) => Err(store_err(e)),
        }
    }

    /// True when the clone is in sync and no request of this client is in flight.
    #[wasm_bindgen(js_name = cloneIdle)]
    pub fn clone_idle(&self, store: &str) -> bool {
        self.core.clone_idle(store)
    }

    /// Why the gateway refused the clone for good (an error with `code` and `message`), or
    /// undefined: such a clone does not try again.
    #[wasm_bindgen(js_name = cloneRefusal)]
    pub fn clone_refusal(&self, store: &str) -> JsValue {
        match self.core.clone_refusal(store) {
            Some(e) => store_err(e.clone()),
            None => JsValue::UNDEFINED,
        }
    }

    #[wasm_bindgen(js_name = cloneSynced)]
    pub fn clone_synced(&self, store: &str) -> bool {
        self.core
            .clone_replica(store)
            .is_ok_and(crate::store::Replica::is_synced)
    }

    /// Queues a store operation (`put`, `putUnique`, `erase`, `clear`, `increment`,
    /// `decrement`, `append`, `insertInto`, `removeFrom`, `push`, `pop`, `get`, `exists`,
    /// `keys`, `getIndexFromValue`, `awaitIdle`) with `{key, value, amount, index, expiry}`;
    /// returns the request id.
    #[wasm_bindgen(js_name = storeRequest)]
    pub fn store_request(&mut self, store: &str, op: &str, args: &JsValue) -> Result<f64, JsValue> {
        self.core.set_now(js_sys::Date::now());
        let op = store_op(op, args)?;
        self.core
            .store_request(store, op)
            .map(|id| id as f64)
            .map_err(store_err)
    }

    /// Runs the clone timers (retries, buffered-write timeouts); returns events.
    pub fn tick(&mut self) -> Array {
        events_js(self.core.tick(js_sys::Date::now()), &mut self.last_topic)
    }

    #[wasm_bindgen(getter, js_name = needsTick)]
    pub fn needs_tick(&self) -> bool {
        self.core.needs_tick()
    }

    /// Handles a frame; returns its events.
    #[wasm_bindgen(js_name = onFrame)]
    pub fn on_frame(&mut self, bytes: &[u8]) -> Result<Array, JsValue> {
        self.core.set_now(js_sys::Date::now());
        self.core
            .on_frame(bytes)
            .map(|events| events_js(events, &mut self.last_topic))
            .map_err(super::decode_err)
    }

    /// Handles a text (JSON) frame; returns its events.
    #[wasm_bindgen(js_name = onText)]
    pub fn on_text(&mut self, text: &str) -> Result<Array, JsValue> {
        self.on_frame(text.as_bytes())
    }
}
