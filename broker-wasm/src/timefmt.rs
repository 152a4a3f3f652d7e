//! Text forms of timestamps and timespans used by Broker's JSON encoding (ZB-39).
//!
//! Timespans print as `"0s"` for zero, else in the coarsest of `s`, `ms`, `us`, `ns` that is
//! exact (`"1500ms"`, `"1us"`). Timestamps print as `YYYY-MM-DDThh:mm:ss.fff` in UTC with
//! three fraction digits, as Broker does; where the value has sub-millisecond precision we
//! print six or nine digits instead of truncating, so no value is lost (a documented
//! divergence). Dates before 1970 are rendered correctly.

use crate::data::{Timespan, Timestamp};
use crate::error::ValueError;

const NS_PER_SEC: i64 = 1_000_000_000;
const SECS_PER_DAY: i64 = 86_400;

/// Formats a timespan, e.g. `1500ms`.
pub fn format_timespan(t: Timespan) -> String {
    let ns = t.0;
    if ns == 0 {
        return "0s".to_owned();
    }
    for (unit, div) in [("s", NS_PER_SEC), ("ms", 1_000_000), ("us", 1_000)] {
        if ns % div == 0 {
            return format!("{}{unit}", ns / div);
        }
    }
    format!("{ns}ns")
}

/// Parses `<signed integer><unit>`, unit one of `ns us ms s min h d`.
pub fn parse_timespan(s: &str) -> Result<Timespan, ValueError> {
    let bad = || ValueError::Timespan(s.to_owned());
    let split = s
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && (c == '-' || c == '+'))))
        .map(|(i, _)| i)
        .ok_or_else(bad)?;
    let (num, unit) = s.split_at(split);
    if num.is_empty() || num == "-" || num == "+" {
        return Err(bad());
    }
    let n: i64 = num.parse().map_err(|_| bad())?;
    let mul: i64 = match unit {
        "ns" => 1,
        "us" => 1_000,
        "ms" => 1_000_000,
        "s" => NS_PER_SEC,
        "min" => 60 * NS_PER_SEC,
        "h" => 3_600 * NS_PER_SEC,
        "d" => SECS_PER_DAY * NS_PER_SEC,
        _ => return Err(bad()),
    };
    n.checked_mul(mul)
        .map(Timespan)
        .ok_or_else(|| ValueError::OutOfRange(format!("timespan `{s}`")))
}

/// Days since 1970-01-01 -> (year, month, day). Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) -> days since 1970-01-01. Howard Hinnant's `days_from_civil`.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Formats a timestamp as `YYYY-MM-DDThh:mm:ss.fff` (UTC, no zone suffix).
pub fn format_timestamp(t: Timestamp) -> String {
    let secs = t.0.div_euclid(NS_PER_SEC);
    let frac = t.0.rem_euclid(NS_PER_SEC);
    let days = secs.div_euclid(SECS_PER_DAY);
    let sod = secs.rem_euclid(SECS_PER_DAY);
    let (y, mo, d) = civil_from_days(days);
    let (h, mi, s) = (sod / 3600, (sod % 3600) / 60, sod % 60);
    let fraction = if frac % 1_000_000 == 0 {
        format!("{:03}", frac / 1_000_000)
    } else if frac % 1_000 == 0 {
        format!("{:06}", frac / 1_000)
    } else {
        format!("{frac:09}")
    };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{fraction}")
}

/// Parses `YYYY-MM-DDThh:mm:ss` with an optional fraction of up to nine digits and an
/// optional zone (`Z` or `±hh:mm`); no zone means UTC.
pub fn parse_timestamp(s: &str) -> Result<Timestamp, ValueError> {
    let bad = || ValueError::Timestamp(s.to_owned());
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Result<i64, ValueError> {
        let part = b.get(from..from + len).ok_or_else(bad)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        Ok(part
            .iter()
            .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0')))
    };
    let sep = |at: usize, c: u8| -> Result<(), ValueError> {
        (b.get(at) == Some(&c)).then_some(()).ok_or_else(bad)
    };
    let year = num(0, 4)?;
    sep(4, b'-')?;
    let month = num(5, 2)? as u32;
    sep(7, b'-')?;
    let day = num(8, 2)? as u32;
    sep(10, b'T')?;
    let hour = num(11, 2)?;
    sep(13, b':')?;
    let minute = num(14, 2)?;
    sep(16, b':')?;
    let second = num(17, 2)?;
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(bad());
    }
    let mut pos = 19;
    let mut frac_ns = 0i64;
    if b.get(pos) == Some(&b'.') {
        pos += 1;
        let start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        let digits = pos - start;
        if digits == 0 || digits > 9 {
            return Err(bad());
        }
        frac_ns = num(start, digits)? * 10i64.pow((9 - digits) as u32);
    }
    let offset_secs = match b.get(pos) {
        None => 0,
        Some(b'Z') if pos + 1 == b.len() => 0,
        Some(&c @ (b'+' | b'-')) if pos + 6 == b.len() => {
            sep(pos + 3, b':')?;
            let (oh, om) = (num(pos + 1, 2)?, num(pos + 4, 2)?);
            if oh > 23 || om > 59 {
                return Err(bad());
            }
            let off = oh * 3600 + om * 60;
            if c == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return Err(bad()),
    };
    let secs =
        days_from_civil(year, month, day) * SECS_PER_DAY + hour * 3600 + minute * 60 + second
            - offset_secs;
    // i128: the last second of the range can overflow before the fraction is added back.
    let ns = i128::from(secs) * i128::from(NS_PER_SEC) + i128::from(frac_ns);
    i64::try_from(ns)
        .map(Timestamp)
        .map_err(|_| ValueError::OutOfRange(format!("timestamp `{s}`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zb39_timespan_forms() {
        let cases = [
            (0, "0s"),
            (999, "999ns"),
            (1_000, "1us"),
            (1_500_000_000, "1500ms"),
            (1_000_000_000, "1s"),
            (2_000_000_000, "2s"),
            (-3_000, "-3us"),
        ];
        for (ns, text) in cases {
            assert_eq!(format_timespan(Timespan(ns)), text);
            assert_eq!(parse_timespan(text), Ok(Timespan(ns)));
        }
        assert_eq!(parse_timespan("2min"), Ok(Timespan::from_secs(120)));
        assert_eq!(parse_timespan("1h"), Ok(Timespan::from_secs(3600)));
        assert_eq!(parse_timespan("1d"), Ok(Timespan::from_secs(86_400)));
        for bad in ["", "s", "1", "1.5s", "1 s", "-", "1x", "99999999999999d"] {
            assert!(parse_timespan(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn zb39_timestamp_forms() {
        let t = Timestamp(1_404_901_004 * NS_PER_SEC);
        assert_eq!(format_timestamp(t), "2014-07-09T10:16:44.000");
        assert_eq!(parse_timestamp("2014-07-09T10:16:44.000"), Ok(t));
        assert_eq!(parse_timestamp("2014-07-09T10:16:44"), Ok(t));
        assert_eq!(parse_timestamp("2014-07-09T10:16:44Z"), Ok(t));
        assert_eq!(parse_timestamp("2014-07-09T12:16:44+02:00"), Ok(t));
        assert_eq!(parse_timestamp("2014-07-09T09:16:44.000-01:00"), Ok(t));
        // Sub-millisecond precision survives.
        let fine = Timestamp(t.0 + 1_234);
        assert_eq!(format_timestamp(fine), "2014-07-09T10:16:44.000001234");
        assert_eq!(parse_timestamp(&format_timestamp(fine)), Ok(fine));
        let micro = Timestamp(t.0 + 5_000);
        assert_eq!(format_timestamp(micro), "2014-07-09T10:16:44.000005");
        // Before 1970.
        let old = Timestamp(-1_500_000_000);
        assert_eq!(format_timestamp(old), "1969-12-31T23:59:58.500");
        assert_eq!(parse_timestamp("1969-12-31T23:59:58.5"), Ok(old));
        for bad in [
            "2014-13-01T00:00:00",
            "2014-02-30T00:00:00",
            "2014-07-09 10:16:44",
            "2014-07-09T10:16:44.",
            "2014-07-09T10:16:44.0000000001",
            "2014-07-09T10:16:44+2",
            "123ns",
            "9999-12-31T23:59:59",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn calendar_round_trip() {
        for t in [i64::MIN, i64::MAX, -1, 0] {
            let t = Timestamp(t);
            assert_eq!(parse_timestamp(&format_timestamp(t)), Ok(t));
        }
        for days in [-719_468i64, -1, 0, 1, 11_016, 106_751] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
