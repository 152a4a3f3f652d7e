//! Server-side WebSocket data frames, written without tungstenite (unmasked text frames,
//! FIN set), and the pieces of a burst.

use std::time::{SystemTime, UNIX_EPOCH};

/// Appends an unmasked text frame (FIN set) with `payload`.
pub fn push_frame(buf: &mut Vec<u8>, payload: &[u8]) {
    push_frame_parts(buf, &[payload]);
}

/// Appends an unmasked text frame whose payload is `parts` in order.
pub fn push_frame_parts(buf: &mut Vec<u8>, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    buf.push(0x81);
    if len < 126 {
        buf.push(len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        buf.push(126);
        buf.extend_from_slice(&short.to_be_bytes());
    } else {
        buf.push(127);
        buf.extend_from_slice(&(len as u64).to_be_bytes());
    }
    for p in parts {
        buf.extend_from_slice(p);
    }
}

/// The current time as Broker renders a timestamp: `YYYY-MM-DDThh:mm:ss.mmm`.
pub fn now_text() -> String {
    now_text_in(1_000_000)
}

/// The current time as Broker renders a timestamp, truncated to `unit` nanoseconds (Zeek's
/// own output: milliseconds).
pub fn now_text_in(unit: i64) -> String {
    let ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    broker_wasm::timefmt::format_timestamp(broker_wasm::Timestamp(ns - ns % unit))
}

/// `v` in decimal, written into `buf`.
pub fn fmt_u64(buf: &mut [u8; 20], mut v: u64) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).expect("digits")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_numbers() {
        let mut b = [0; 20];
        assert_eq!(fmt_u64(&mut b, 0), "0");
        assert_eq!(fmt_u64(&mut b, u64::MAX), u64::MAX.to_string());
        let mut buf = Vec::new();
        push_frame(&mut buf, b"hi");
        assert_eq!(buf, [0x81, 2, b'h', b'i']);
        buf.clear();
        push_frame(&mut buf, &[b'x'; 300]);
        assert_eq!(buf[..4], [0x81, 126, 1, 44]);
        buf.clear();
        push_frame_parts(&mut buf, &[&[b'x'; 40_000], &[b'y'; 40_000]]);
        assert_eq!(buf[..10], [0x81, 127, 0, 0, 0, 0, 0, 1, 0x38, 0x80]);
        assert_eq!(buf.len(), 10 + 80_000);
        assert_eq!(now_text().len(), "2025-01-02T03:04:05.006".len());
    }
}
