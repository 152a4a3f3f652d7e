//! The IBM Data Broker's error codes (DB-27): numbers, names and the exact messages of
//! `dbrGet_error` / PyDBR's `getErrorMessage`, shared by the gateway, the Rust client and (as
//! a copy in `js/lib/namespace.js`) the JS client. Also the request flags (DB-14) and limits
//! (DB-36) of the original.

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
}
