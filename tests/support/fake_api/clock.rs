//! Wall-clock timestamps in the Kubernetes wire formats (RFC 3339 seconds, MicroTime, HTTP dates).
//! Pure formatting apart from `now_*`; no dependency on a time crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds and microseconds since the Unix epoch.
pub fn now_micros() -> (u64, u32) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs(), d.subsec_micros())
}

/// `2026-11-25T10:14:31Z`, the format of `metav1.Time`.
pub fn rfc3339_now() -> String {
    rfc3339(now_micros().0)
}

pub fn rfc3339(secs: u64) -> String {
    let (y, mo, d, h, mi, s, _) = civil(secs);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `Tue, 25 Nov 2026 10:14:31 GMT`, the HTTP `Date` header.
pub fn http_date_now() -> String {
    let secs = now_micros().0;
    let (y, mo, d, h, mi, s, wd) = civil(secs);
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {d:02} {} {y:04} {h:02}:{mi:02}:{s:02} GMT",
        DAYS[wd],
        MONTHS[(mo - 1) as usize]
    )
}

/// (year, month, day, hour, minute, second, weekday index with 0 = Thursday 1970-01-01).
fn civil(secs: u64) -> (i64, u32, u32, u64, u64, u64, usize) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days_from_civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        (days % 7) as usize,
    )
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Checks a `metav1.MicroTime` the way Go's `time.Parse("2006-01-02T15:04:05.000000Z07:00")` does
/// and returns it normalised to UTC (`...Z`), or the Go parse error text.
pub fn parse_micro_time(s: &str) -> Result<String, String> {
    const LAYOUT: &str = "2006-01-02T15:04:05.000000Z07:00";
    let err = |rest: &str, elem: &str| {
        Err(format!(
            "parsing time \"{s}\" as \"{LAYOUT}\": cannot parse \"{rest}\" as \"{elem}\""
        ))
    };
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = s.get(from..from + len)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let fields: [(usize, usize, &str, Option<u8>); 6] = [
        (0, 4, "2006", Some(b'-')),
        (5, 2, "01", Some(b'-')),
        (8, 2, "02", Some(b'T')),
        (11, 2, "15", Some(b':')),
        (14, 2, "04", Some(b':')),
        (17, 2, "05", None),
    ];
    let mut vals = [0i64; 6];
    for (i, (from, len, elem, sep)) in fields.iter().enumerate() {
        let Some(v) = num(*from, *len) else {
            return err(s.get(*from..).unwrap_or(""), elem);
        };
        vals[i] = v;
        if let Some(sep) = sep
            && b.get(from + len) != Some(sep)
        {
            return err(
                s.get(from + len..).unwrap_or(""),
                &LAYOUT[from + len..from + len + 1],
            );
        }
    }
    let rest = &s[19..];
    let frac_ok = rest.len() >= 7
        && rest.as_bytes()[0] == b'.'
        && rest.as_bytes()[1..7].iter().all(u8::is_ascii_digit);
    if !frac_ok {
        return err(rest, ".000000");
    }
    let micros = &rest[1..7];
    let zone = &rest[7..];
    let offset_secs: i64 = if zone == "Z" {
        0
    } else {
        let zb = zone.as_bytes();
        let ok = zb.len() == 6
            && (zb[0] == b'+' || zb[0] == b'-')
            && zb[3] == b':'
            && [1, 2, 4, 5].iter().all(|&i| zb[i].is_ascii_digit());
        if !ok {
            return err(zone, "Z07:00");
        }
        let h: i64 = zone[1..3].parse().unwrap_or(0);
        let m: i64 = zone[4..6].parse().unwrap_or(0);
        let sign = if zb[0] == b'-' { -1 } else { 1 };
        sign * (h * 3600 + m * 60)
    };
    let [y, mo, d, h, mi, sec] = vals;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 59 {
        return Err(format!("parsing time \"{s}\": value out of range"));
    }
    let local = days_from_civil(y, mo as u32, d as u32) * 86_400 + h * 3600 + mi * 60 + sec;
    let utc = (local - offset_secs).max(0) as u64;
    let base = rfc3339(utc);
    Ok(format!("{}.{micros}Z", &base[..19]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_601_671), "2026-11-25T10:14:31Z");
        assert_eq!(
            parse_micro_time("2026-11-25T12:15:34.123456+02:00").unwrap(),
            "2026-11-25T10:15:34.123456Z"
        );
        assert!(
            parse_micro_time("2026-11-25T10:15:34.123Z")
                .unwrap_err()
                .ends_with("cannot parse \".123Z\" as \".000000\"")
        );
    }
}
