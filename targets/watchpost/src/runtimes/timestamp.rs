//! RFC 3339 timestamps as the Docker Engine API writes them (`State.StartedAt`:
//! `2026-12-06T00:44:02.479025696Z`, or with a `+hh:mm` offset) to epoch nanoseconds. A small
//! parser of our own rather than a date crate: only this one shape is ever read, and a runtime's
//! "never started" value (`0001-01-01T00:00:00Z`) must come out as "unknown", not as an error.

use watchpost_core::EpochNanos;

/// Days from 1970-01-01 to the given proleptic Gregorian date (negative before it). The month is
/// shifted so the year starts in March, which puts the leap day at the end of the shifted year.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let shifted_year = if month <= 2 { year - 1 } else { year };
    let era = shifted_year.div_euclid(400);
    let year_of_era = shifted_year - era * 400; // 0..=399
    let shifted_month = (i64::from(month) + 9) % 12; // March = 0
    let day_of_year = (153 * shifted_month + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `text` as epoch nanoseconds. `None` for anything that is not an RFC 3339 date-time, and for
/// times before 1970 (runtimes write year 1 for "never").
pub fn parse_rfc3339(text: &str) -> Option<EpochNanos> {
    let text = text.trim();
    let (date, rest) = text.split_once(['T', 't', ' '])?;
    let mut date_parts = date.splitn(3, '-');
    let year = digits(date_parts.next()?)?;
    let month = digits(date_parts.next()?)?;
    let day = digits(date_parts.next()?)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // The zone: `Z`, or `+hh:mm` / `-hh:mm` after the seconds.
    let (clock, offset_seconds) = if let Some(clock) = rest.strip_suffix(['Z', 'z']) {
        (clock, 0i64)
    } else {
        let at = rest.rfind(['+', '-'])?;
        let (clock, zone) = rest.split_at(at);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (h, m) = zone.get(1..)?.split_once(':')?;
        let (h, m) = (digits(h)?, digits(m)?);
        if h > 23 || m > 59 {
            return None;
        }
        (clock, sign * i64::from(h * 3600 + m * 60))
    };
    let (hms, fraction) = match clock.split_once('.') {
        Some((hms, f)) => (hms, Some(f)),
        None => (clock, None),
    };
    let mut hms_parts = hms.splitn(3, ':');
    let hour = digits(hms_parts.next()?)?;
    let minute = digits(hms_parts.next()?)?;
    let second = digits(hms_parts.next()?)?;
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let nanos = match fraction {
        None => 0u64,
        Some(f) => {
            if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // Nanosecond precision; extra digits are dropped.
            let kept = &f[..f.len().min(9)];
            let value: u64 = kept.parse().ok()?;
            value * 10u64.pow(9 - kept.len() as u32)
        }
    };
    let days = days_from_civil(i64::from(year), month, day);
    let seconds = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_seconds;
    let seconds = u64::try_from(seconds).ok()?;
    seconds.checked_mul(1_000_000_000)?.checked_add(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2026-12-06T00:44:02.479025696Z"),
            Some(1_796_517_842_479_025_696)
        );
        // Leap day, and an offset east of UTC.
        assert_eq!(
            parse_rfc3339("2024-02-29T12:00:00+02:00"),
            Some(1_709_200_800_000_000_000)
        );
        assert_eq!(
            parse_rfc3339("2000-03-01T00:00:00.5-01:30"),
            Some(951_874_200_500_000_000)
        );
        // Precision beyond nanoseconds is dropped.
        assert_eq!(
            parse_rfc3339("1970-01-01T00:00:01.1234567899Z"),
            Some(1_123_456_789)
        );
    }

    #[test]
    fn never_and_garbage_are_unknown() {
        for bad in [
            "0001-01-01T00:00:00Z",
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-12-06T25:00:00Z",
            "2026-12-06T00:00:00",
            "2026-12-06T00:00:00.Z",
            "2026-12-06T00:00:00+2:3x",
            "२०२६-12-06T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }
}
