//! The one clock credsync reads: shadow counts days, the record counts seconds.
#![forbid(unsafe_code)]

use std::time::{SystemTime, UNIX_EPOCH};

const SECONDS_PER_DAY: i64 = 86_400;

/// A moment, in the two units the stores use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Seconds since 1970-01-01 UTC.
    pub unix_secs: i64,
    /// Days since 1970-01-01 UTC: shadow's field 3.
    pub day: i64,
}

impl Now {
    pub fn read() -> Self {
        let unix_secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Now::at(unix_secs)
    }

    pub fn at(unix_secs: i64) -> Self {
        Now {
            unix_secs,
            day: unix_secs.div_euclid(SECONDS_PER_DAY),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Now;

    #[test]
    fn days_are_utc_days_since_the_epoch() {
        assert_eq!(Now::at(0).day, 0);
        assert_eq!(Now::at(86_399).day, 0);
        assert_eq!(Now::at(86_400).day, 1);
        // 2026-11-26T00:00:00Z
        assert_eq!(Now::at(1_795_651_200).day, 20_783);
    }
}

/// `2026-11-26T19:40:00Z` for a Unix time (proleptic Gregorian, UTC).
pub fn utc_text(unix_secs: i64) -> String {
    let (days, secs) = (
        unix_secs.div_euclid(SECONDS_PER_DAY),
        unix_secs.rem_euclid(SECONDS_PER_DAY),
    );
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod text_tests {
    #[test]
    fn formats_utc() {
        assert_eq!(super::utc_text(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            super::utc_text(1_795_651_200 + 3_661),
            "2026-11-26T01:01:01Z"
        );
        assert_eq!(super::utc_text(951_782_400), "2000-02-29T00:00:00Z");
    }
}
