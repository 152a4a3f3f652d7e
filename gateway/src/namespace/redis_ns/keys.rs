//! RB-11: where a namespace lives in Redis. Every key of namespace `ns` carries `{e(ns)}` as
//! its hash tag, so a namespace occupies one slot of a cluster and each operation on it is
//! one atomic script. `e` escapes the bytes that could leave the tag or fake a separator
//! (`{`, `}`, `:`, `%`) as `%XX`, so no namespace or tuple name reaches another's keys.
//!
//! ```text
//! dbr:{<ns>}:meta          hash   level, groups (\x1f-separated), marked (0/1), created
//! dbr:{<ns>}:att           hash   gateway id -> "<count>:<lease expiry, ms>" (RB-14)
//! dbr:{<ns>}:names         set    tuple names with at least one value
//! dbr:{<ns>}:t:<name>      list   the values of <name>, oldest first: "<size>:<encoding>"
//! dbr:{<ns>}:wake          channel  a put publishes the tuple name (RB-12)
//! dbr:{<ns>}:moving:<id>   list   values on their way to another namespace (RB-13)
//! dbr:{<ns>}:journal       hash   <id> -> "<destination ns>\x1f<name>" for those moves
//! dbr:spaces               set    every namespace name (for listing)
//! ```

/// Escapes a name for use inside a key: `%`, `{`, `}` and `:` become `%25`, `%7B`, `%7D`,
/// `%3A`; every other byte stays.
pub(crate) fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '%' => out.push_str("%25"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            ':' => out.push_str("%3A"),
            c => out.push(c),
        }
    }
    out
}

/// The keys of one namespace.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

/// The set of every namespace name.
pub(crate) const SPACES: &str = "dbr:spaces";

impl Keys {
    pub(crate) fn new(ns: &str) -> Keys {
        Keys {
            prefix: format!("dbr:{{{}}}:", escape(ns)),
        }
    }

    pub(crate) fn meta(&self) -> String {
        format!("{}meta", self.prefix)
    }

    pub(crate) fn att(&self) -> String {
        format!("{}att", self.prefix)
    }

    pub(crate) fn names(&self) -> String {
        format!("{}names", self.prefix)
    }

    pub(crate) fn wake(&self) -> String {
        format!("{}wake", self.prefix)
    }

    pub(crate) fn journal(&self) -> String {
        format!("{}journal", self.prefix)
    }

    /// The prefix of tuple lists (scripts append the escaped name).
    pub(crate) fn tuple_prefix(&self) -> String {
        format!("{}t:", self.prefix)
    }

    pub(crate) fn tuple(&self, name: &str) -> String {
        format!("{}t:{}", self.prefix, escape(name))
    }

    pub(crate) fn moving(&self, id: &str) -> String {
        format!("{}moving:{}", self.prefix, escape(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rb11_names_cannot_leave_their_hash_tag_or_reach_other_keys() {
        assert_eq!(Keys::new("jobs").tuple("a"), "dbr:{jobs}:t:a");
        // A brace would end the tag early; a colon would fake a separator.
        assert_eq!(Keys::new("a}b").meta(), "dbr:{a%7Db}:meta");
        assert_eq!(Keys::new("x").tuple("y:meta"), "dbr:{x}:t:y%3Ameta");
        assert_ne!(Keys::new("a:t:b").meta(), Keys::new("a").tuple("b"));
        assert_eq!(escape("100%{}:"), "100%25%7B%7D%3A");
        // Escaping is injective: distinct names, distinct keys.
        assert_ne!(Keys::new("%7B").meta(), Keys::new("{").meta());
    }
}
