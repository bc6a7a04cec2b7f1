//! The one way Sluice writes a time: RFC 3339 in UTC with milliseconds
//! (`2026-11-24T09:26:34.074Z`), in `meta`, envelopes and positions.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The current time.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// The last time RFC 3339 can write (its years have four digits):
/// 9999-12-31T23:59:59.999Z, in milliseconds since the epoch.
const LAST_MS: u64 = 253_402_300_799_999;

/// A time given in milliseconds since the epoch (negative ones as the
/// epoch, ones past year 9999 as the last time there is).
pub fn rfc3339_millis(ms: i64) -> String {
    let ms = u64::try_from(ms).unwrap_or(0).min(LAST_MS);
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_are_written_in_utc_with_three_decimals() {
        assert_eq!(
            rfc3339_millis(1_767_323_045_250),
            "2026-01-02T03:04:05.250Z"
        );
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(-5), "1970-01-01T00:00:00.000Z");
        assert!(now_rfc3339().ends_with('Z'));
    }

    /// An event's timestamp is data: one past what RFC 3339 can write (a
    /// four-digit year) must not stop the batch (found by the fuzz targets,
    /// with a Firehose record's `approximateArrivalTimestamp`).
    #[test]
    fn a_time_past_year_9999_is_written_as_the_last_one_there_is() {
        assert_eq!(
            rfc3339_millis(253_402_300_800_000),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(rfc3339_millis(i64::MAX), "9999-12-31T23:59:59.999Z");
    }
}
