//! Wall-clock timestamps in the forms the Kubernetes API uses: RFC 3339 `Time` (seconds, for events and
//! conditions) and `MicroTime` (exactly six fractional digits, for Leases), and RFC 3339 read back
//! (an exec plugin's `expirationTimestamp`).
//!
//! Pure: formatting and parsing only; callers pass the `SystemTime` (tests pass fixed ones).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `2024-05-01T10:00:08Z`
pub fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let (days, rem) = (since.as_secs() / 86_400, since.as_secs() % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

/// `2024-05-01T10:00:08.123456Z`: the apiserver rejects any other number of fractional digits.
pub fn micro_time(t: SystemTime) -> String {
    let us = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_micros());
    format!("{}.{us:06}Z", rfc3339(t).trim_end_matches('Z'))
}

/// Milliseconds since the Unix epoch (0 before it).
pub fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// RFC 3339 (`2026-11-25T10:00:00Z`, `…T10:00:00.123456+02:00`) to a `SystemTime`; None if malformed.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    // A fixed-width decimal field: None unless every byte is a digit.
    let num = |at: usize, len: usize| {
        let digit = |n: i64, c: &u8| c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'));
        b.get(at..at + len)?.iter().try_fold(0, digit)
    };
    let sep = |i: usize, allowed: &[u8]| b.get(i).is_some_and(|c| allowed.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    // A date that does not exist (month 13, February 30) does not survive the round trip.
    let days = days_from_civil(year, month, day);
    let real_date = civil_from_days(days) == (year, month as u32, day as u32);
    if !real_date || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    // `.digits` (the first nine are the nanoseconds), then `Z` or `±hh:mm` from byte `i`.
    let rest = s.get(19..)?;
    let (frac, zone) = match rest.strip_prefix('.') {
        Some(r) => r.split_at(r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len())),
        None => ("", rest),
    };
    if rest.starts_with('.') && frac.is_empty() {
        return None;
    }
    let nanos: u32 = format!("{frac:0<9}")[..9].parse().ok()?;
    let i = b.len() - zone.len();
    let offset = match zone.as_bytes() {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (num(i + 1, 2)?, num(i + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            (h * 3600 + m * 60) * if *sign == b'-' { -1 } else { 1 }
        }
        _ => return None,
    };
    // A leap second (:60) counts as the last second of its minute.
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset;
    let whole = Duration::from_secs(secs.unsigned_abs());
    let at = if secs >= 0 {
        UNIX_EPOCH.checked_add(whole)
    } else {
        UNIX_EPOCH.checked_sub(whole)
    };
    at?.checked_add(Duration::from_nanos(u64::from(nanos)))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(at(0, 0)), "1970-01-01T00:00:00Z");
        // 2024-05-01T10:00:08Z, a leap year, after February.
        assert_eq!(rfc3339(at(1_714_557_608, 0)), "2024-05-01T10:00:08Z");
        assert_eq!(rfc3339(at(951_782_400, 0)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(at(4_102_444_799, 0)), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn micro_time_has_exactly_six_digits() {
        assert_eq!(
            micro_time(at(1_714_557_608, 123_456_789)),
            "2024-05-01T10:00:08.123456Z"
        );
        assert_eq!(
            micro_time(at(1_714_557_608, 5_000)),
            "2024-05-01T10:00:08.000005Z"
        );
    }

    #[test]
    fn rfc3339_parses_offsets_and_fractions() {
        let at = |s| parse_rfc3339(s).map(|t| t.duration_since(UNIX_EPOCH).unwrap());
        assert_eq!(at("1970-01-01T00:00:00Z"), Some(Duration::ZERO));
        assert_eq!(
            at("2026-11-25T10:00:00Z"),
            Some(Duration::from_secs(1_795_600_800))
        );
        assert_eq!(
            at("2026-11-25T12:00:00+02:00"),
            Some(Duration::from_secs(1_795_600_800))
        );
        assert_eq!(
            at("2026-11-25t09:30:00.5-00:30"),
            Some(Duration::new(1_795_600_800, 500_000_000))
        );
        assert_eq!(
            at("2024-02-29T00:00:00.123456789123Z"),
            Some(Duration::new(1_709_164_800, 123_456_789))
        );
        assert!(parse_rfc3339("1969-12-31T23:59:59Z").is_some());
        for bad in [
            "",
            "2026-11-25",
            "2026-11-25T10:00:00",
            "2026-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2026-11-25T24:00:00Z",
            "2026-11-25T10:00:00.Z",
            "2026-11-25T10:00:00+0200",
            "2026-11-25T10:00:00Zjunk",
            "２０２６-11-25T10:00:00Z",
            "+026-11-25T10:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
