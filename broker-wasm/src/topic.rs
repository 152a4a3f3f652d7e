//! Topics, filters and the subscription index (ZB-12).
//!
//! A subscription `s` matches topic `t` iff `t` starts with `s`, byte for byte: `/test`
//! matches `/test2`, `/a/` does not match `/a`, and `""` matches everything. The index is a
//! byte trie, so finding the subscribers of a topic costs one step per topic byte, however
//! many subscriptions exist.

use thiserror::Error;

/// The reserved marker that user topics must not contain.
pub const RESERVED: &str = "<$>";
/// Prefix of internal, never-forwarded topics.
pub const LOCAL_PREFIX: &str = "<$>/local/";
/// Topic of error messages for status subscribers (ZB-24).
pub const ERRORS_TOPIC: &str = "<$>/local/data/errors";
/// Topic of status messages for status subscribers (ZB-24).
pub const STATUSES_TOPIC: &str = "<$>/local/data/statuses";
/// Longest topic accepted from clients, in bytes.
pub const MAX_TOPIC_LEN: usize = 4096;

/// Why a topic was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TopicError {
    #[error("topic `{0}` contains the reserved marker <$>")]
    Reserved(String),
    #[error("topic of {0} bytes exceeds the limit of {MAX_TOPIC_LEN} bytes")]
    TooLong(usize),
}

/// Checks a topic (or subscription prefix) given by a user: no `<$>`, at most
/// [`MAX_TOPIC_LEN`] bytes.
pub fn validate_user_topic(topic: &str) -> Result<(), TopicError> {
    if topic.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong(topic.len()));
    }
    if topic.contains(RESERVED) {
        return Err(TopicError::Reserved(topic.to_owned()));
    }
    Ok(())
}

/// True if subscription prefix `prefix` matches `topic`.
pub fn matches(prefix: &str, topic: &str) -> bool {
    topic.as_bytes().starts_with(prefix.as_bytes())
}

/// Broker's `Topic` `/` operator: inserts a `/` only when `a` is non-empty and `b` does not
/// start with one, then strips one trailing `/`.
pub fn join(a: &str, b: &str) -> String {
    let mut out = String::with_capacity(a.len() + b.len() + 1);
    out.push_str(a);
    if !a.is_empty() && !b.starts_with('/') {
        out.push('/');
    }
    out.push_str(b);
    if out.ends_with('/') {
        out.pop();
    }
    out
}

/// Splits on `/`, dropping empty parts.
pub fn split(topic: &str) -> Vec<&str> {
    topic.split('/').filter(|p| !p.is_empty()).collect()
}

/// Normalises a filter: sorted, and without any topic covered by a shorter one
/// (`{/foo/bar, /foo/baz, /zeek} + /foo -> {/foo, /zeek}`).
pub fn normalize<I, S>(topics: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut all: Vec<String> = topics.into_iter().map(Into::into).collect();
    all.sort_unstable();
    all.dedup();
    // In sorted order a covering prefix comes right before everything it covers.
    let mut out: Vec<String> = Vec::with_capacity(all.len());
    for t in all {
        if out.last().is_some_and(|p| matches(p, &t)) {
            continue;
        }
        out.push(t);
    }
    out
}

/// A normalised filter (ZB-12) that grows by [`Filter::add`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    topics: Vec<String>,
}

impl Filter {
    pub fn new() -> Filter {
        Filter::default()
    }

    /// Adds a prefix; returns true if the filter changed.
    pub fn add(&mut self, topic: &str) -> bool {
        if self.covers(topic) {
            return false;
        }
        self.topics.retain(|t| !matches(topic, t));
        let pos = self
            .topics
            .binary_search_by(|t| t.as_str().cmp(topic))
            .unwrap_or_else(|p| p);
        self.topics.insert(pos, topic.to_owned());
        true
    }

    /// True if some prefix in the filter matches `topic`.
    pub fn covers(&self, topic: &str) -> bool {
        // Filters hold a handful of prefixes; routing uses SubscriptionIndex instead.
        self.topics.iter().any(|p| matches(p, topic))
    }

    pub fn topics(&self) -> &[String] {
        &self.topics
    }
}

impl FromIterator<String> for Filter {
    fn from_iter<I: IntoIterator<Item = String>>(iter: I) -> Filter {
        Filter {
            topics: normalize(iter),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The subscription index.

#[derive(Debug, Clone)]
struct Node<K> {
    /// Children by next byte, sorted.
    edges: Vec<(u8, u32)>,
    /// Subscribers whose prefix ends here, with how many times they added it.
    subs: Vec<(K, u32)>,
    parent: u32,
}

impl<K> Node<K> {
    fn new(parent: u32) -> Self {
        Node {
            edges: Vec::new(),
            subs: Vec::new(),
            parent,
        }
    }
}

/// Maps subscription prefixes to subscribers (any small copyable key, such as a session id)
/// and finds every subscriber whose prefix matches a topic.
///
/// A subscriber may hold the same prefix several times (reference counted) and any number of
/// overlapping prefixes; [`SubscriptionIndex::lookup`] reports it once.
#[derive(Debug, Clone)]
pub struct SubscriptionIndex<K> {
    nodes: Vec<Node<K>>,
    free: Vec<u32>,
    prefixes: usize,
}

impl<K: Copy + Ord> Default for SubscriptionIndex<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Copy + Ord> SubscriptionIndex<K> {
    pub fn new() -> Self {
        SubscriptionIndex {
            nodes: vec![Node::new(0)],
            free: Vec::new(),
            prefixes: 0,
        }
    }

    /// Number of distinct (prefix, subscriber) pairs.
    pub fn len(&self) -> usize {
        self.prefixes
    }

    pub fn is_empty(&self) -> bool {
        self.prefixes == 0
    }

    fn child(&self, node: u32, byte: u8) -> Option<u32> {
        let edges = &self.nodes[node as usize].edges;
        edges
            .binary_search_by_key(&byte, |e| e.0)
            .ok()
            .map(|i| edges[i].1)
    }

    fn find(&self, prefix: &str) -> Option<u32> {
        prefix.bytes().try_fold(0u32, |n, b| self.child(n, b))
    }

    /// Adds `prefix` for `key`. Returns true if `key` did not hold `prefix` before.
    pub fn insert(&mut self, prefix: &str, key: K) -> bool {
        let mut node = 0u32;
        for b in prefix.bytes() {
            node = match self.child(node, b) {
                Some(c) => c,
                None => {
                    let id = match self.free.pop() {
                        Some(id) => {
                            self.nodes[id as usize] = Node::new(node);
                            id
                        }
                        None => {
                            self.nodes.push(Node::new(node));
                            (self.nodes.len() - 1) as u32
                        }
                    };
                    let edges = &mut self.nodes[node as usize].edges;
                    let pos = edges.binary_search_by_key(&b, |e| e.0).unwrap_err();
                    edges.insert(pos, (b, id));
                    id
                }
            };
        }
        let subs = &mut self.nodes[node as usize].subs;
        match subs.binary_search_by(|s| s.0.cmp(&key)) {
            Ok(i) => {
                subs[i].1 += 1;
                false
            }
            Err(i) => {
                subs.insert(i, (key, 1));
                self.prefixes += 1;
                true
            }
        }
    }

    /// Removes one reference of `prefix` for `key`. Returns true if `key` no longer holds it.
    pub fn remove(&mut self, prefix: &str, key: K) -> bool {
        let Some(node) = self.find(prefix) else {
            return false;
        };
        let subs = &mut self.nodes[node as usize].subs;
        let Ok(i) = subs.binary_search_by(|s| s.0.cmp(&key)) else {
            return false;
        };
        subs[i].1 -= 1;
        if subs[i].1 > 0 {
            return false;
        }
        subs.remove(i);
        self.prefixes -= 1;
        self.prune(node, prefix.as_bytes());
        true
    }

    /// Removes every prefix of `key` (e.g. when a session closes); returns the prefixes.
    pub fn remove_all(&mut self, key: K) -> Vec<String> {
        let prefixes = self.prefixes_of(key);
        for p in &prefixes {
            let node = self.find(p).expect("prefix is in the trie");
            let subs = &mut self.nodes[node as usize].subs;
            if let Ok(i) = subs.binary_search_by(|s| s.0.cmp(&key)) {
                subs.remove(i);
                self.prefixes -= 1;
            }
            self.prune(node, p.as_bytes());
        }
        prefixes
    }

    /// Frees childless nodes without subscribers from `node` up to the root.
    fn prune(&mut self, mut node: u32, path: &[u8]) {
        let mut depth = path.len();
        while node != 0 {
            let n = &self.nodes[node as usize];
            if !n.edges.is_empty() || !n.subs.is_empty() {
                break;
            }
            let parent = n.parent;
            depth -= 1;
            let byte = path[depth];
            let edges = &mut self.nodes[parent as usize].edges;
            if let Ok(i) = edges.binary_search_by_key(&byte, |e| e.0) {
                edges.remove(i);
            }
            self.free.push(node);
            node = parent;
        }
    }

    /// Appends to `out` every subscriber with a prefix of `topic`, each once, in key order.
    pub fn lookup_into(&self, topic: &str, out: &mut Vec<K>) {
        let start = out.len();
        let mut node = 0u32;
        let mut hits = 0;
        let mut push = |n: &Node<K>, out: &mut Vec<K>| {
            if !n.subs.is_empty() {
                hits += 1;
                out.extend(n.subs.iter().map(|s| s.0));
            }
        };
        push(&self.nodes[0], out);
        for b in topic.bytes() {
            match self.child(node, b) {
                Some(c) => {
                    node = c;
                    push(&self.nodes[c as usize], out);
                }
                None => break,
            }
        }
        if hits > 1 {
            out[start..].sort_unstable();
            let mut w = start;
            for r in start..out.len() {
                if w == start || out[w - 1] != out[r] {
                    out[w] = out[r];
                    w += 1;
                }
            }
            out.truncate(w);
        }
    }

    /// Every subscriber with a prefix of `topic`, each once.
    pub fn lookup(&self, topic: &str) -> Vec<K> {
        let mut out = Vec::new();
        self.lookup_into(topic, &mut out);
        out
    }

    /// True if any subscriber's prefix matches `topic`.
    pub fn any_match(&self, topic: &str) -> bool {
        let mut node = 0u32;
        if !self.nodes[0].subs.is_empty() {
            return true;
        }
        for b in topic.bytes() {
            match self.child(node, b) {
                Some(c) => {
                    if !self.nodes[c as usize].subs.is_empty() {
                        return true;
                    }
                    node = c;
                }
                None => return false,
            }
        }
        false
    }

    /// Every prefix held by anyone, as a normalised filter (what to advertise to peers).
    pub fn filter(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut path = Vec::new();
        // A prefix that is held covers its whole subtree, so stop descending there.
        self.walk(0, &mut path, &mut |n, p| {
            if n.subs.is_empty() {
                true
            } else {
                out.push(String::from_utf8_lossy(p).into_owned());
                false
            }
        });
        out
    }

    /// The prefixes `key` holds, sorted.
    pub fn prefixes_of(&self, key: K) -> Vec<String> {
        let mut out = Vec::new();
        let mut path = Vec::new();
        self.walk(0, &mut path, &mut |n, p| {
            if n.subs.binary_search_by(|s| s.0.cmp(&key)).is_ok() {
                out.push(String::from_utf8_lossy(p).into_owned());
            }
            true
        });
        out
    }

    /// Depth-first walk in byte order; `visit` returns whether to descend.
    fn walk(&self, node: u32, path: &mut Vec<u8>, visit: &mut impl FnMut(&Node<K>, &[u8]) -> bool) {
        let n = &self.nodes[node as usize];
        if !visit(n, path) {
            return;
        }
        for &(b, child) in &n.edges {
            path.push(b);
            self.walk(child, path, visit);
            path.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zb12_plain_prefix_matching() {
        assert!(matches("/test", "/test"));
        assert!(matches("/test", "/test/x"));
        assert!(matches("/test", "/test2"));
        assert!(matches("/test", "/testing/x"));
        assert!(!matches("/a/", "/a"));
        assert!(matches("", ""));
        assert!(matches("", "/anything"));
    }

    #[test]
    fn zb12_filter_normalisation() {
        let f: Filter = ["/foo/bar", "/foo/baz", "/zeek"]
            .map(String::from)
            .into_iter()
            .collect();
        assert_eq!(f.topics(), ["/foo/bar", "/foo/baz", "/zeek"]);
        let mut f = f;
        assert!(f.add("/foo"));
        assert_eq!(f.topics(), ["/foo", "/zeek"]);
        assert!(!f.add("/foo/qux"));
        assert!(f.add("/a/"));
        assert_eq!(f.topics(), ["/a/", "/foo", "/zeek"]);
        assert_eq!(normalize(["/test", "/a/", "/test"]), ["/a/", "/test"]);
        assert_eq!(normalize(["/x", ""]), [""]);
    }

    #[test]
    fn zb12_reserved_and_helpers() {
        assert!(validate_user_topic("/ok/topic").is_ok());
        assert!(matches!(
            validate_user_topic("x<$>y"),
            Err(TopicError::Reserved(_))
        ));
        assert!(matches!(
            validate_user_topic(&"a".repeat(MAX_TOPIC_LEN + 1)),
            Err(TopicError::TooLong(_))
        ));
        assert_eq!(join("/b/c", "/a/"), "/b/c/a");
        assert_eq!(join("/a/", "/b/c"), "/a//b/c");
        assert_eq!(join("", "x"), "x");
        assert_eq!(join("a", "b"), "a/b");
        assert_eq!(split("/a//b/"), ["a", "b"]);
    }

    #[test]
    fn index_lookup_and_removal() {
        let mut ix = SubscriptionIndex::new();
        assert!(ix.insert("/test", 1u32));
        assert!(ix.insert("/test/x", 1));
        assert!(ix.insert("/a/", 2));
        assert!(ix.insert("", 3));
        assert!(!ix.insert("/test", 1));
        assert_eq!(ix.lookup("/test2"), [1, 3]);
        assert_eq!(ix.lookup("/test/x/y"), [1, 3]);
        assert_eq!(ix.lookup("/a"), [3]);
        assert_eq!(ix.lookup("/a/b"), [2, 3]);
        assert_eq!(ix.filter(), [""]);
        assert!(ix.remove("", 3));
        assert_eq!(ix.filter(), ["/a/", "/test"]);
        // "/test" was added twice by 1: one removal keeps it.
        assert!(!ix.remove("/test", 1));
        assert_eq!(ix.lookup("/test2"), [1]);
        assert!(ix.remove("/test", 1));
        assert_eq!(ix.lookup("/test2"), Vec::<u32>::new());
        assert_eq!(ix.lookup("/test/x"), [1]);
        assert_eq!(ix.prefixes_of(1), ["/test/x"]);
        assert_eq!(ix.remove_all(1), ["/test/x"]);
        assert_eq!(ix.len(), 1);
        assert!(!ix.any_match("/test/x"));
        assert!(ix.any_match("/a/b"));
        // Pruned nodes are reused.
        let before = ix.nodes.len();
        ix.insert("/qqqq", 9);
        assert_eq!(ix.nodes.len(), before);
    }

    #[test]
    fn index_agrees_with_a_scan() {
        // Deterministic pseudo-random prefixes over a small alphabet, checked against matches().
        let alphabet = b"/ab";
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let word = |n: &mut dyn FnMut() -> u64| {
            let len = (n() % 5) as usize;
            (0..len)
                .map(|_| alphabet[(n() % 3) as usize] as char)
                .collect::<String>()
        };
        let mut ix = SubscriptionIndex::new();
        let mut subs: Vec<(String, u32)> = Vec::new();
        for _ in 0..300 {
            let p = word(&mut next);
            let k = (next() % 20) as u32;
            if next() % 3 == 0 {
                if let Some(i) = subs.iter().position(|(q, j)| *q == p && *j == k) {
                    subs.remove(i);
                    ix.remove(&p, k);
                }
            } else {
                subs.push((p.clone(), k));
                ix.insert(&p, k);
            }
            let t = word(&mut next);
            let mut want: Vec<u32> = subs
                .iter()
                .filter(|(q, _)| matches(q, &t))
                .map(|s| s.1)
                .collect();
            want.sort_unstable();
            want.dedup();
            assert_eq!(ix.lookup(&t), want, "topic {t:?}");
            assert_eq!(ix.filter(), normalize(subs.iter().map(|s| s.0.clone())));
        }
    }
}
