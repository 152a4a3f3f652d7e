// Subscribers of an Endpoint: a queue of `[topic, value]` messages per subscriber (ZB-14..19)
// and the status subscriber (ZB-20). The endpoint pushes what its core routes to them.

import { BrokerError } from "./errors.js";

/** A queue of `[topic, value]` messages for some topic prefixes (ZB-14..19). */
export class Subscriber {
  constructor(endpoint, id, queueSize) {
    this._endpoint = endpoint;
    this._id = id;
    this._queueSize = queueSize;
    this._queue = [];
    this._head = 0;
    this._waiters = [];
    this._closed = false;
    /** Messages dropped because the queue was full. */
    this.dropped = 0;
  }

  _push(item) {
    const w = this._waiters.shift();
    if (w) {
      w.resolve(item);
      return;
    }
    if (this._queue.length - this._head >= this._queueSize) {
      this.dropped++;
      return;
    }
    this._queue.push(item);
  }

  _take() {
    const item = this._queue[this._head++];
    if (this._head > 1024 && this._head * 2 > this._queue.length) {
      this._queue = this._queue.slice(this._head);
      this._head = 0;
    }
    return item;
  }

  _end() {
    this._closed = true;
    for (const w of this._waiters.splice(0)) w.reject(new BrokerError("shutting_down", "subscriber closed"));
  }

  /** Messages that can be taken without waiting. */
  get available() {
    return this._queue.length - this._head;
  }

  /**
   * The next `[topic, value]`. With `timeoutMs`, resolves to `null` when nothing arrives in
   * time. Rejects with code `shutting_down` once the subscriber is closed and drained.
   * @param {{timeoutMs?: number}} [options]
   * @returns {Promise<[string, unknown] | null>}
   */
  get({ timeoutMs } = {}) {
    if (this.available > 0) return Promise.resolve(this._take());
    if (this._closed) return Promise.reject(new BrokerError("shutting_down", "subscriber closed"));
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject };
      if (timeoutMs !== undefined) {
        const timer = setTimeout(() => {
          const i = this._waiters.indexOf(waiter);
          if (i >= 0) this._waiters.splice(i, 1);
          resolve(null);
        }, timeoutMs);
        waiter.resolve = (v) => { clearTimeout(timer); resolve(v); };
        waiter.reject = (e) => { clearTimeout(timer); reject(e); };
      }
      this._waiters.push(waiter);
    });
  }

  /** Every message queued now, without waiting (ZB-16). @returns {Array<[string, unknown]>} */
  poll() {
    const out = this._queue.slice(this._head);
    this._queue = [];
    this._head = 0;
    return out;
  }

  /** Adds a prefix at any time (ZB-17). @param {string} topic */
  addTopic(topic) {
    this._endpoint._core.addTopics(this._id, [topic]);
    this._endpoint._schedule();
  }

  /** Removes a prefix at any time (ZB-17). @param {string} topic */
  removeTopic(topic) {
    this._endpoint._core.removeTopics(this._id, [topic]);
    this._endpoint._schedule();
  }

  /** Stops the subscription; queued messages can still be taken. */
  close() {
    if (this._closed) return;
    this._endpoint._core.removeSubscriber(this._id);
    this._endpoint._subs.delete(this._id);
    this._endpoint._schedule();
    this._end();
  }

  async *[Symbol.asyncIterator]() {
    for (;;) {
      let item;
      try {
        item = await this.get();
      } catch (e) {
        if (e instanceof BrokerError && e.code === "shutting_down") return;
        throw e;
      }
      yield item;
    }
  }
}

/**
 * Status and error events (ZB-20): `{type: "status", code, message, node?, address?, port?}`
 * or `{type: "error", code, context}`.
 */
export class StatusSubscriber extends Subscriber {
  constructor(endpoint, receiveStatuses, queueSize) {
    super(endpoint, -1, queueSize);
    this.receiveStatuses = receiveStatuses;
  }
  addTopic() { throw new BrokerError("bad_member_function_call", "status subscribers have no topics"); }
  removeTopic() { throw new BrokerError("bad_member_function_call", "status subscribers have no topics"); }
  close() {
    this._endpoint._statusSubs.delete(this);
    this._end();
  }
}
