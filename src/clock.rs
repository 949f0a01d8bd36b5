//! The wall clock, read and shown without panicking on any setting of it: a clock before 1970
//! reads as the epoch, and times past the year 9999 (which RFC 3339 cannot spell) are shown as
//! that year's last second.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// 9999-12-31T23:59:59Z, the last second RFC 3339 can write.
pub const LAST_SHOWN: u64 = 253_402_300_799;

/// Unix seconds now; 0 while the clock is set before 1970.
pub fn now() -> u64 {
    unix(SystemTime::now())
}

/// Unix seconds of `time`; 0 for a time before 1970.
pub fn unix(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `unix` as RFC 3339 in UTC, whole seconds.
pub fn rfc3339(unix: u64) -> String {
    let shown = UNIX_EPOCH + Duration::from_secs(unix.min(LAST_SHOWN));
    humantime::format_rfc3339_seconds(shown).to_string()
}

/// Now, as [`rfc3339`].
pub fn rfc3339_now() -> String {
    rfc3339(now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_time_is_shown_without_a_panic() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(LAST_SHOWN), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(LAST_SHOWN + 1), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(u64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(unix(UNIX_EPOCH - Duration::from_secs(86_400)), 0);
    }
}
