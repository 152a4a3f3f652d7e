//! The IBM Data Broker's error codes (DB-27): numbers, names and the exact messages of
//! `dbrGet_error` / PyDBR's `getErrorMessage`, shared by the gateway, the Rust client and the
//! JS client (the wasm binding exports the table). Also the request flags (DB-14), levels
//! (DB-07) and limits (DB-36) of the original, and the PyDBR client rules that are pure
//! arithmetic on them: the flag decoding of read/get (DB-11, DB-15), the scatter/gather split
//! (DB-26) and the directory list (DB-20). The rules about answers (buffer check,
//! cancellation, failures) are in [`crate::client::namespace`].

use crate::protocol::Wait;
use crate::Timespan;

/// `DBR_Errorcode_t`, numbered from 0 in the original's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(i32)]
pub enum DbrCode {
    Success = 0,
    Generic = 1,
    Invalid = 2,
    Handle = 3,
    InProgress = 4,
    Timeout = 5,
    UBuffer = 6,
    Unavail = 7,
    Exists = 8,
    NsBusy = 9,
    NsInval = 10,
    NoMemory = 11,
    TagError = 12,
    NoFile = 13,
    NoAuth = 14,
    NoConnect = 15,
    Cancelled = 16,
    NotImpl = 17,
    InvalidOp = 18,
    BePost = 19,
    BeGeneral = 20,
    Iterator = 21,
    Plugin = 22,
    MaxError = 23,
}

/// Every code with its `DBR_*` name and message (the sentinel `DBR_ERR_MAXERROR` has no
/// message of its own and reads "Unknown Error", as in the original).
pub const CODES: [(DbrCode, &str, &str); 24] = [
    (DbrCode::Success, "DBR_SUCCESS", "Operation successful"),
    (
        DbrCode::Generic,
        "DBR_ERR_GENERIC",
        "A general or unknown error has occurred",
    ),
    (DbrCode::Invalid, "DBR_ERR_INVALID", "Invalid argument"),
    (
        DbrCode::Handle,
        "DBR_ERR_HANDLE",
        "An invalid handle was encountered inside",
    ),
    (
        DbrCode::InProgress,
        "DBR_ERR_INPROGRESS",
        "Operation in progress",
    ),
    (DbrCode::Timeout, "DBR_ERR_TIMEOUT", "Operation timed out"),
    (
        DbrCode::UBuffer,
        "DBR_ERR_UBUFFER",
        "Provided user buffer problem (too small, not available)",
    ),
    (DbrCode::Unavail, "DBR_ERR_UNAVAIL", "Entry not available"),
    (DbrCode::Exists, "DBR_ERR_EXISTS", "Entry already exists"),
    (
        DbrCode::NsBusy,
        "DBR_ERR_NSBUSY",
        "Namespace still referenced by a client",
    ),
    (DbrCode::NsInval, "DBR_ERR_NSINVAL", "Namespace is invalid"),
    (
        DbrCode::NoMemory,
        "DBR_ERR_NOMEMORY",
        "Insufficient memory or storage",
    ),
    (DbrCode::TagError, "DBR_ERR_TAGERROR", "Invalid tag"),
    (DbrCode::NoFile, "DBR_ERR_NOFILE", "File not found"),
    (
        DbrCode::NoAuth,
        "DBR_ERR_NOAUTH",
        "Access authorization required or failed",
    ),
    (
        DbrCode::NoConnect,
        "DBR_ERR_NOCONNECT",
        "Connection to a storage backend failed",
    ),
    (
        DbrCode::Cancelled,
        "DBR_ERR_CANCELLED",
        "Operation was cancelled",
    ),
    (
        DbrCode::NotImpl,
        "DBR_ERR_NOTIMPL",
        "Operation not implemented",
    ),
    (DbrCode::InvalidOp, "DBR_ERR_INVALIDOP", "Invalid operation"),
    (
        DbrCode::BePost,
        "DBR_ERR_BE_POST",
        "Failed to post request to back-end",
    ),
    (
        DbrCode::BeGeneral,
        "DBR_ERR_BE_GENERAL",
        "Unspecified back-end error",
    ),
    (
        DbrCode::Iterator,
        "DBR_ERR_ITERATOR",
        "Invalid iterator or error iterating the namespace",
    ),
    (
        DbrCode::Plugin,
        "DBR_ERR_PLUGIN",
        "Error while processing request/data in data adapter",
    ),
    (DbrCode::MaxError, "DBR_ERR_MAXERROR", "Unknown Error"),
];

/// Message for codes outside `0..=22`.
pub const UNKNOWN_ERROR: &str = "Unknown Error";

impl DbrCode {
    /// The numeric value.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The code for a number (`0..=23`).
    pub fn from_code(code: i32) -> Option<DbrCode> {
        usize::try_from(code)
            .ok()
            .and_then(|i| CODES.get(i))
            .map(|c| c.0)
    }

    /// `DBR_SUCCESS`, `DBR_ERR_TIMEOUT`, ...
    pub fn name(self) -> &'static str {
        CODES[self as usize].1
    }

    /// The original's exact message (`dbrGet_error`).
    pub fn message(self) -> &'static str {
        CODES[self as usize].2
    }
}

impl std::fmt::Display for DbrCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// PyDBR's `getErrorCode`: the name of a code, `"Unknown Error"` if out of range.
pub fn error_name(code: i32) -> &'static str {
    match DbrCode::from_code(code) {
        Some(c) if c != DbrCode::MaxError => c.name(),
        _ => UNKNOWN_ERROR,
    }
}

/// `dbrGet_error` / PyDBR's `getErrorMessage`: `"Unknown Error"` outside `0..=22`.
pub fn error_message(code: i32) -> &'static str {
    match DbrCode::from_code(code) {
        Some(c) => c.message(),
        None => UNKNOWN_ERROR,
    }
}

/// `DBR_FLAGS_NONE`: wait (up to the timeout).
pub const FLAGS_NONE: u64 = 0;
/// `DBR_FLAGS_NOWAIT`: fail at once with UNAVAIL.
pub const FLAGS_NOWAIT: u64 = 1;
/// `DBR_FLAGS_PARTIAL`: report the full size on a short buffer.
pub const FLAGS_PARTIAL: u64 = 2;
/// `DBR_FLAGS_MAX`.
pub const FLAGS_MAX: u64 = 3;
/// Read index in the flags: `flags | (index << READ_FLAGS_INDEX_SHIFT)` (DB-11).
pub const READ_FLAGS_INDEX_SHIFT: u32 = 4;
/// Longest namespace or tuple name in bytes (`DBR_MAX_KEY_LEN`).
pub const MAX_KEY_LEN: usize = 1023;
/// Default blocking timeout (`DBR_TIMEOUT_DEFAULT`), seconds.
pub const TIMEOUT_DEFAULT_SECS: u64 = 5;
/// Outstanding asynchronous requests (`DBR_POSTED_QUEUE_DEPTH`): tags are `0..1024`.
pub const POSTED_QUEUE_DEPTH: usize = 1024;
/// `DB_TAG_ERROR`.
pub const TAG_ERROR: i64 = -1;
/// Persistence levels (`DBR_PERST_*`, DB-07).
pub const PERST_VOLATILE_SIMPLE: u8 = 0;
pub const PERST_VOLATILE_FT: u8 = 1;
pub const PERST_TEMPORARY_SIMPLE: u8 = 2;
pub const PERST_TEMPORARY_FT: u8 = 3;
pub const PERST_PERMANENT_SIMPLE: u8 = 4;
pub const PERST_PERMANENT_FT: u8 = 5;
pub const PERST_MAX: u8 = 6;

/// True for the levels this broker keeps in SQLite (`PERMANENT_*`); the others live in
/// memory.
pub fn level_persists(level: u8) -> bool {
    matches!(level, PERST_PERMANENT_SIMPLE | PERST_PERMANENT_FT)
}

/// A value's size in the sense of DB-13: the byte length of a string (text or binary), the
/// length of the binary encoding for every other type.
pub fn value_size(value: &crate::Data) -> u64 {
    match value {
        crate::Data::String(b) => b.len() as u64,
        other => crate::binary::to_vec(other).map_or(0, |v| v.len() as u64),
    }
}

/// What the flags of a PyDBR read or get ask for (DB-11, DB-14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchFlags {
    /// `DBR_FLAGS_NOWAIT`: fail at once with UNAVAIL.
    pub nowait: bool,
    /// `DBR_FLAGS_PARTIAL`: a short buffer reports the value's full size.
    pub partial: bool,
    /// The element a read addresses (bits 4 and up); always 0 for a get.
    pub index: u64,
}

impl FetchFlags {
    /// Decodes the flags of a read (`get = false`) or a get.
    pub fn decode(flags: u64, get: bool) -> FetchFlags {
        FetchFlags {
            nowait: flags & FLAGS_NOWAIT != 0,
            partial: flags & FLAGS_PARTIAL != 0,
            index: if get {
                0
            } else {
                flags >> READ_FLAGS_INDEX_SHIFT
            },
        }
    }

    /// How long the call waits (DB-15): not at all with NOWAIT; a blocking call up to
    /// `timeout` (`None`: `DBR_TIMEOUT=0`, forever); an asynchronous one (`readA`/`getA`)
    /// until a value arrives or it is cancelled, as in the original.
    pub fn wait(&self, timeout: Option<Timespan>, asynchronous: bool) -> Wait {
        match timeout {
            _ if self.nowait => Wait::NoWait,
            Some(t) if !asynchronous => Wait::Timeout(t),
            _ => Wait::Forever,
        }
    }
}

/// `DBR_TIMEOUT` in seconds as the timeout of blocking calls: 0 waits forever (DB-15).
/// Fractions are kept (the original read whole seconds); negative values do not wait.
pub fn timeout_from_secs(secs: f64) -> Option<Timespan> {
    if secs == 0.0 || secs.is_nan() || secs == f64::INFINITY {
        return None;
    }
    // Saturating: a huge timeout is as good as forever, a negative one expires at once.
    Some(Timespan((secs.max(0.0) * 1e9).min(i64::MAX as f64) as i64))
}

/// DB-26: a scatter read/get into pieces of `sizes[i]` bytes asks for one value of at most
/// their total, without PARTIAL (a longer value is `DBR_ERR_UBUFFER` and a get leaves it
/// queued): `(capacity, flags)`. No pieces is `DBR_ERR_INVALID`. Unlike the original, NOWAIT
/// keeps its meaning (the original inverted it here).
pub fn scatter_request(sizes: &[usize], flags: u64) -> Result<(u64, u64), DbrCode> {
    if sizes.is_empty() {
        return Err(DbrCode::Invalid);
    }
    let total = sizes.iter().fold(0u64, |a, n| a.saturating_add(*n as u64));
    Ok((total, flags & !FLAGS_PARTIAL))
}

/// DB-26: the bytes a scatter spreads: a string's bytes, or the binary encoding of any other
/// value (what [`value_size`] counts).
pub fn value_bytes(value: &crate::Data) -> Vec<u8> {
    match value {
        crate::Data::String(b) => b.clone(),
        other => crate::binary::to_vec(other).unwrap_or_default(),
    }
}

/// DB-26: `bytes` spread over pieces of `sizes[i]` bytes, in order; pieces past the end of
/// the value are short or empty.
pub fn scatter<'a>(bytes: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut at = 0usize;
    sizes
        .iter()
        .map(|n| {
            let start = at.min(bytes.len());
            at = at.saturating_add(*n);
            &bytes[start..at.min(bytes.len())]
        })
        .collect()
}

/// DB-26: the parts of a gather put as one binary value; no parts is `DBR_ERR_INVALID`.
pub fn gather(parts: &[&[u8]]) -> Result<crate::Data, DbrCode> {
    if parts.is_empty() {
        return Err(DbrCode::Invalid);
    }
    Ok(crate::Data::String(parts.concat()))
}

/// DB-20 as PyDBR returns it: the names joined by newlines, cut to `size` bytes (never inside
/// a character), split again; with the byte length of the (cut) list. No names give `[""]`.
pub fn directory_list(names: &[String], size: Option<usize>) -> (Vec<String>, usize) {
    let mut text = names.join("\n");
    if let Some(size) = size.filter(|s| text.len() > *s) {
        let mut cut = size;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    let list = text.split('\n').map(str::to_owned).collect();
    (list, text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The original's table, written out here (not derived from `CODES`): number, name and
    /// the exact text of `dbrGet_error`.
    const PINNED: [(i32, &str, &str); 24] = [
        (0, "DBR_SUCCESS", "Operation successful"),
        (
            1,
            "DBR_ERR_GENERIC",
            "A general or unknown error has occurred",
        ),
        (2, "DBR_ERR_INVALID", "Invalid argument"),
        (
            3,
            "DBR_ERR_HANDLE",
            "An invalid handle was encountered inside",
        ),
        (4, "DBR_ERR_INPROGRESS", "Operation in progress"),
        (5, "DBR_ERR_TIMEOUT", "Operation timed out"),
        (
            6,
            "DBR_ERR_UBUFFER",
            "Provided user buffer problem (too small, not available)",
        ),
        (7, "DBR_ERR_UNAVAIL", "Entry not available"),
        (8, "DBR_ERR_EXISTS", "Entry already exists"),
        (
            9,
            "DBR_ERR_NSBUSY",
            "Namespace still referenced by a client",
        ),
        (10, "DBR_ERR_NSINVAL", "Namespace is invalid"),
        (11, "DBR_ERR_NOMEMORY", "Insufficient memory or storage"),
        (12, "DBR_ERR_TAGERROR", "Invalid tag"),
        (13, "DBR_ERR_NOFILE", "File not found"),
        (
            14,
            "DBR_ERR_NOAUTH",
            "Access authorization required or failed",
        ),
        (
            15,
            "DBR_ERR_NOCONNECT",
            "Connection to a storage backend failed",
        ),
        (16, "DBR_ERR_CANCELLED", "Operation was cancelled"),
        (17, "DBR_ERR_NOTIMPL", "Operation not implemented"),
        (18, "DBR_ERR_INVALIDOP", "Invalid operation"),
        (19, "DBR_ERR_BE_POST", "Failed to post request to back-end"),
        (20, "DBR_ERR_BE_GENERAL", "Unspecified back-end error"),
        (
            21,
            "DBR_ERR_ITERATOR",
            "Invalid iterator or error iterating the namespace",
        ),
        (
            22,
            "DBR_ERR_PLUGIN",
            "Error while processing request/data in data adapter",
        ),
        (23, "DBR_ERR_MAXERROR", "Unknown Error"),
    ];

    #[test]
    fn db27_numbers_names_messages() {
        let variants = [
            DbrCode::Success,
            DbrCode::Generic,
            DbrCode::Invalid,
            DbrCode::Handle,
            DbrCode::InProgress,
            DbrCode::Timeout,
            DbrCode::UBuffer,
            DbrCode::Unavail,
            DbrCode::Exists,
            DbrCode::NsBusy,
            DbrCode::NsInval,
            DbrCode::NoMemory,
            DbrCode::TagError,
            DbrCode::NoFile,
            DbrCode::NoAuth,
            DbrCode::NoConnect,
            DbrCode::Cancelled,
            DbrCode::NotImpl,
            DbrCode::InvalidOp,
            DbrCode::BePost,
            DbrCode::BeGeneral,
            DbrCode::Iterator,
            DbrCode::Plugin,
            DbrCode::MaxError,
        ];
        assert_eq!(CODES.len(), PINNED.len());
        for ((code, (num, name, message)), row) in variants.iter().zip(PINNED).zip(CODES) {
            assert_eq!(row, (*code, name, message), "row {num} of CODES");
            assert_eq!(code.code(), num, "{name}");
            assert_eq!(DbrCode::from_code(num), Some(*code), "{name}");
            assert_eq!(code.name(), name);
            assert_eq!(code.to_string(), name);
            assert_eq!(code.message(), message, "{name}");
            assert_eq!(error_message(num), message, "{name}");
            // PyDBR's getErrorCode has no name for the sentinel.
            let py_name = if num == 23 { "Unknown Error" } else { name };
            assert_eq!(error_name(num), py_name);
        }
        for outside in [-1, 24, 99, i32::MIN, i32::MAX] {
            assert_eq!(DbrCode::from_code(outside), None);
            assert_eq!(error_message(outside), "Unknown Error");
            assert_eq!(error_name(outside), "Unknown Error");
        }
        assert_eq!(UNKNOWN_ERROR, "Unknown Error");
    }

    #[test]
    fn db14_db36_flags_and_limits_of_the_original() {
        assert_eq!(
            (FLAGS_NONE, FLAGS_NOWAIT, FLAGS_PARTIAL, FLAGS_MAX),
            (0, 1, 2, 3)
        );
        assert_eq!(READ_FLAGS_INDEX_SHIFT, 4);
        assert_eq!(MAX_KEY_LEN, 1023);
        assert_eq!(TIMEOUT_DEFAULT_SECS, 5);
        assert_eq!(POSTED_QUEUE_DEPTH, 1024);
        assert_eq!(TAG_ERROR, -1);
        assert_eq!(
            [
                PERST_VOLATILE_SIMPLE,
                PERST_VOLATILE_FT,
                PERST_TEMPORARY_SIMPLE,
                PERST_TEMPORARY_FT,
                PERST_PERMANENT_SIMPLE,
                PERST_PERMANENT_FT,
                PERST_MAX
            ],
            [0, 1, 2, 3, 4, 5, 6]
        );
        let persisting: Vec<u8> = (0..=PERST_MAX).filter(|l| level_persists(*l)).collect();
        assert_eq!(persisting, [4, 5]);
    }

    #[test]
    fn db11_db14_db15_flag_decoding() {
        let f = FetchFlags::decode(
            FLAGS_NOWAIT | FLAGS_PARTIAL | (3 << READ_FLAGS_INDEX_SHIFT),
            false,
        );
        assert_eq!(
            f,
            FetchFlags {
                nowait: true,
                partial: true,
                index: 3
            }
        );
        assert_eq!(
            FetchFlags::decode(3 << READ_FLAGS_INDEX_SHIFT, true).index,
            0
        );
        let five = Some(Timespan(5_000_000_000));
        assert_eq!(f.wait(five, false), Wait::NoWait);
        assert_eq!(f.wait(None, true), Wait::NoWait);
        let block = FetchFlags::decode(FLAGS_NONE, true);
        assert_eq!(
            block.wait(five, false),
            Wait::Timeout(Timespan(5_000_000_000))
        );
        assert_eq!(block.wait(None, false), Wait::Forever);
        assert_eq!(
            block.wait(five, true),
            Wait::Forever,
            "async calls never time out"
        );
        assert_eq!(timeout_from_secs(0.0), None);
        assert_eq!(timeout_from_secs(1.5), Some(Timespan(1_500_000_000)));
        assert_eq!(timeout_from_secs(-2.0), Some(Timespan(0)));
        assert_eq!(timeout_from_secs(1e300), Some(Timespan(i64::MAX)));
    }

    #[test]
    fn db26_scatter_and_gather() {
        assert_eq!(scatter_request(&[], 0), Err(DbrCode::Invalid));
        assert_eq!(
            scatter_request(&[2, 3], FLAGS_NOWAIT | FLAGS_PARTIAL),
            Ok((5, FLAGS_NOWAIT))
        );
        assert_eq!(
            scatter_request(&[usize::MAX, usize::MAX], 0),
            Ok((u64::MAX, 0))
        );
        assert_eq!(
            scatter(b"abcdefg", &[2, 2, 10, 1]),
            vec![&b"ab"[..], b"cd", b"efg", b""]
        );
        assert_eq!(gather(&[]), Err(DbrCode::Invalid));
        assert_eq!(
            gather(&[b"ab", b"", b"c"]),
            Ok(crate::Data::String(b"abc".to_vec()))
        );
        let count = crate::Data::Count(7);
        assert_eq!(value_bytes(&count).len() as u64, value_size(&count));
        assert_eq!(value_bytes(&crate::Data::String(b"xy".to_vec())), b"xy");
    }

    #[test]
    fn db20_directory_list_cuts_between_characters() {
        let names = ["k".to_string(), "\u{e9}t\u{e9}".to_string()];
        assert_eq!(
            directory_list(&names, None),
            (vec!["k".to_string(), "\u{e9}t\u{e9}".to_string()], 7)
        );
        // Byte 3 is inside the first "\u{e9}" (bytes 2..4): cut before it.
        assert_eq!(
            directory_list(&names, Some(3)),
            (vec!["k".to_string(), String::new()], 2)
        );
        assert_eq!(directory_list(&[], Some(10)), (vec![String::new()], 0));
    }
}
