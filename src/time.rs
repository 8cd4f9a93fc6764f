//! Wall-clock timestamps in the forms the Kubernetes API uses: RFC 3339 `Time` (seconds, for events and
//! conditions) and `MicroTime` (exactly six fractional digits, for Leases).
//!
//! Pure: formatting only; callers pass the `SystemTime` (tests pass fixed ones).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `2024-05-01T10:00:08Z`
pub fn rfc3339(t: SystemTime) -> String {
    let (secs, _) = split(t);
    format_secs(secs, None)
}

/// `2024-05-01T10:00:08.123456Z`: the apiserver rejects any other number of fractional digits.
pub fn micro_time(t: SystemTime) -> String {
    let (secs, nanos) = split(t);
    format_secs(secs, Some(nanos / 1000))
}

/// Milliseconds since the Unix epoch (0 before it).
pub fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn split(t: SystemTime) -> (u64, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    (d.as_secs(), d.subsec_nanos())
}

fn format_secs(secs: u64, micros: Option<u32>) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    match micros {
        Some(us) => format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{us:06}Z"),
        None => format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z"),
    }
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
}
