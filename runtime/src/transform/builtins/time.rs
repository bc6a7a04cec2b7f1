//! Timestamps as integers of epoch milliseconds (UTC): parsing, formatting,
//! arithmetic with durations, truncation; time zones by fixed offset.

use std::fmt::Write as _;

use chrono::format::{Item, ParseErrorKind, StrftimeItems};
use chrono::{
    DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone,
    Timelike,
};
use rhai::{Engine, INT};

use super::{Out, fail};

pub fn register(e: &mut Engine) {
    e.register_fn("parse_timestamp", |s: &str| parse(s))
        .register_fn("parse_timestamp", |s: &str, fmt: &str| {
            parse_with(s, fmt, FixedOffset::east_opt(0).expect("0 is an offset"))
        })
        .register_fn("parse_timestamp", |s: &str, fmt: &str, tz: &str| {
            let tz = offset("parse_timestamp", tz)?;
            parse_with(s, fmt, tz)
        })
        .register_fn("parse_epoch", |n: INT, unit: &str| epoch(n as f64, unit))
        .register_fn("parse_epoch", |n: f64, unit: &str| epoch(n, unit))
        .register_fn("parse_epoch", |n: &str, unit: &str| {
            match n.trim().parse::<f64>() {
                Ok(v) => epoch(v, unit),
                Err(_) => fail("parse_epoch", format!("{n:?} is not a number")),
            }
        })
        .register_fn("format_timestamp", |ms: INT| {
            format("format_timestamp", ms, "%Y-%m-%dT%H:%M:%S%.3fZ", utc())
        })
        .register_fn("format_timestamp", |ms: INT, fmt: &str| {
            format("format_timestamp", ms, fmt, utc())
        })
        .register_fn("format_timestamp", |ms: INT, fmt: &str, tz: &str| {
            let tz = offset("format_timestamp", tz)?;
            format("format_timestamp", ms, fmt, tz)
        })
        .register_fn("duration_ms", |d: &str| duration("duration_ms", d))
        .register_fn("timestamp_add", |ms: INT, d: &str| {
            let by = duration("timestamp_add", d)?;
            match ms.checked_add(by) {
                Some(v) => Ok(v),
                None => fail("timestamp_add", "the result is out of range"),
            }
        })
        .register_fn("truncate_timestamp", |ms: INT, unit: &str| {
            truncate(ms, unit, utc())
        })
        .register_fn("truncate_timestamp", |ms: INT, unit: &str, tz: &str| {
            let tz = offset("truncate_timestamp", tz)?;
            truncate(ms, unit, tz)
        });
}

fn utc() -> FixedOffset {
    FixedOffset::east_opt(0).expect("0 is an offset")
}

/// RFC 3339, or ISO 8601 with an offset (`Z`, `+01:00`, `+0100`), a space or
/// `T` between date and time, fractions of a second optional.
fn parse(s: &str) -> Out<INT> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    let z = match s.strip_suffix(['Z', 'z']) {
        Some(rest) => format!("{rest}+00:00"),
        None => s.to_owned(),
    };
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f%#z",
        "%Y-%m-%d %H:%M:%S%.f%#z",
        "%Y-%m-%dT%H:%M%#z",
        "%Y%m%dT%H%M%S%.f%#z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(&z, fmt) {
            return Ok(t.timestamp_millis());
        }
    }
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
        || NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").is_ok()
        || NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok();
    if naive {
        return fail(
            "parse_timestamp",
            format!(
                "{s:?} has no UTC offset; give its format, read as UTC: parse_timestamp(s, \"%Y-%m-%d %H:%M:%S\")"
            ),
        );
    }
    fail(
        "parse_timestamp",
        format!("{s:?} is not an RFC 3339 or ISO 8601 timestamp with an offset"),
    )
}

/// `s` read with a strftime format; without an offset in the format, the
/// time is in `tz`; without a time, midnight.
fn parse_with(s: &str, fmt: &str, tz: FixedOffset) -> Out<INT> {
    if let Some(why) = format_error(fmt) {
        return fail("parse_timestamp", why);
    }
    let why = match DateTime::parse_from_str(s, fmt) {
        Ok(t) => return Ok(t.timestamp_millis()),
        Err(e) if e.kind() == ParseErrorKind::NotEnough => {
            match NaiveDateTime::parse_from_str(s, fmt) {
                Ok(t) => return local(t, tz),
                Err(e) if e.kind() == ParseErrorKind::NotEnough => {
                    match NaiveDate::parse_from_str(s, fmt) {
                        Ok(d) => return local(d.and_time(NaiveTime::MIN), tz),
                        Err(e) => e,
                    }
                }
                Err(e) => e,
            }
        }
        Err(e) => e,
    };
    fail(
        "parse_timestamp",
        format!("{s:?} does not match the format {fmt:?}: {why}"),
    )
}

fn local(t: NaiveDateTime, tz: FixedOffset) -> Out<INT> {
    match tz.from_local_datetime(&t).single() {
        Some(t) => Ok(t.timestamp_millis()),
        None => fail("parse_timestamp", "the time is out of range"),
    }
}

/// A number of `unit`s since the epoch, as milliseconds.
fn epoch(n: f64, unit: &str) -> Out<INT> {
    let per_ms = match unit {
        "s" => 1e3,
        "ms" => 1.0,
        "us" => 1e-3,
        "ns" => 1e-6,
        other => {
            return fail(
                "parse_epoch",
                format!("unknown unit {other:?}: use \"s\", \"ms\", \"us\" or \"ns\""),
            );
        }
    };
    let ms = (n * per_ms).floor();
    if !ms.is_finite() || ms.abs() > 8.64e15 {
        return fail("parse_epoch", format!("{n} {unit} is out of range"));
    }
    Ok(ms as INT)
}

/// Why `fmt` is not a strftime format this library reads and writes.
pub fn format_error(fmt: &str) -> Option<String> {
    StrftimeItems::new(fmt)
        .any(|i| matches!(i, Item::Error))
        .then(|| format!("{fmt:?} is not a valid strftime format"))
}

fn format(function: &str, ms: INT, fmt: &str, tz: FixedOffset) -> Out<String> {
    if let Some(why) = format_error(fmt) {
        return fail(function, why);
    }
    let Some(t) = DateTime::from_timestamp_millis(ms) else {
        return fail(function, format!("{ms} is out of range"));
    };
    let mut out = String::new();
    match write!(out, "{}", t.with_timezone(&tz).format(fmt)) {
        Ok(()) => Ok(out),
        Err(_) => fail(function, format!("{fmt:?} cannot format this time")),
    }
}

/// An offset: `Z`, `UTC`, `+05:30`, `-0800`.
fn offset(function: &str, tz: &str) -> Out<FixedOffset> {
    if matches!(tz, "Z" | "z" | "UTC" | "utc") {
        return Ok(utc());
    }
    match tz.parse::<FixedOffset>() {
        Ok(o) => Ok(o),
        Err(_) => fail(
            function,
            format!("{tz:?} is not a UTC offset such as \"+05:30\" or \"Z\""),
        ),
    }
}

/// A duration in milliseconds: `90s`, `1h 30m`, `-15m`, `2days`.
fn duration(function: &str, d: &str) -> Out<INT> {
    let (sign, text) = match d.trim().strip_prefix('-') {
        Some(rest) => (-1, rest.trim()),
        None => (1, d.trim()),
    };
    match humantime::parse_duration(text) {
        Ok(v) => match INT::try_from(v.as_millis()) {
            Ok(ms) => Ok(sign * ms),
            Err(_) => fail(function, format!("{d:?} is out of range")),
        },
        Err(e) => fail(function, format!("{d:?} is not a duration: {e}")),
    }
}

/// The start of the `unit` (second … year, weeks from Monday) holding `ms`, in `tz`.
fn truncate(ms: INT, unit: &str, tz: FixedOffset) -> Out<INT> {
    let Some(t) = DateTime::from_timestamp_millis(ms) else {
        return fail("truncate_timestamp", format!("{ms} is out of range"));
    };
    let t = t.with_timezone(&tz).naive_local();
    let d = t.date();
    let midnight = |d: NaiveDate| d.and_time(NaiveTime::MIN);
    let start = match unit {
        "second" => t.with_nanosecond(0),
        "minute" => t.with_nanosecond(0).and_then(|t| t.with_second(0)),
        "hour" => NaiveTime::from_hms_opt(t.hour(), 0, 0).map(|h| d.and_time(h)),
        "day" => Some(midnight(d)),
        "week" => d
            .checked_sub_signed(Duration::days(d.weekday().num_days_from_monday().into()))
            .map(midnight),
        "month" => d.with_day(1).map(midnight),
        "year" => d.with_day(1).and_then(|d| d.with_month(1)).map(midnight),
        other => {
            return fail(
                "truncate_timestamp",
                format!(
                    "unknown unit {other:?}: use \"second\", \"minute\", \"hour\", \"day\", \"week\", \"month\" or \"year\""
                ),
            );
        }
    };
    match start.and_then(|s| tz.from_local_datetime(&s).single()) {
        Some(s) => Ok(s.timestamp_millis()),
        None => fail("truncate_timestamp", "the result is out of range"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{error, eval};

    fn int(src: &str) -> i64 {
        eval(src)
            .unwrap_or_else(|e| panic!("{src}: {e}"))
            .as_int()
            .unwrap()
    }
    fn text(src: &str) -> String {
        eval(src)
            .unwrap_or_else(|e| panic!("{src}: {e}"))
            .into_string()
            .unwrap()
    }

    #[test]
    fn parses_rfc_3339_and_iso_8601_with_an_offset() {
        let t = 1_767_323_045_000; // 2026-01-02T03:04:05Z
        for s in [
            "2026-01-02T03:04:05Z",
            "2026-01-02T03:04:05.000Z",
            "2026-01-02T04:04:05+01:00",
            "2026-01-02T04:04:05+0100",
            "2026-01-02 04:04:05+01:00",
            "2026-01-01T22:04:05-05:00",
            "20260102T030405Z",
        ] {
            assert_eq!(int(&format!("parse_timestamp({s:?})")), t, "{s}");
        }
        assert_eq!(int("parse_timestamp(\"2026-01-02T03:04:05.25Z\")"), t + 250);
        assert_eq!(
            error("parse_timestamp(\"yesterday\")"),
            "parse_timestamp: \"yesterday\" is not an RFC 3339 or ISO 8601 timestamp with an offset"
        );
        assert!(
            error("parse_timestamp(\"2026-01-02 03:04:05\")")
                .starts_with("parse_timestamp: \"2026-01-02 03:04:05\" has no UTC offset")
        );
    }

    #[test]
    fn parses_with_a_format_in_utc_or_an_offset() {
        let t = 1_767_323_045_000;
        assert_eq!(
            int("parse_timestamp(\"02/01/2026 03:04:05\", \"%d/%m/%Y %H:%M:%S\")"),
            t
        );
        assert_eq!(
            int("parse_timestamp(\"02/01/2026 08:34:05\", \"%d/%m/%Y %H:%M:%S\", \"+05:30\")"),
            t
        );
        assert_eq!(
            int("parse_timestamp(\"2026-01-02\", \"%Y-%m-%d\")"),
            1_767_312_000_000
        );
        assert_eq!(int("parse_timestamp(\"1767323045\", \"%s\")"), t);
        assert_eq!(
            error("parse_timestamp(\"2026-13-02\", \"%Y-%m-%d\")"),
            "parse_timestamp: \"2026-13-02\" does not match the format \"%Y-%m-%d\": input is out of range"
        );
        assert_eq!(
            error("parse_timestamp(\"x\", \"%Q\")"),
            "parse_timestamp: \"%Q\" is not a valid strftime format"
        );
    }

    #[test]
    fn reads_epoch_numbers_in_a_unit() {
        assert_eq!(int("parse_epoch(1767323045, \"s\")"), 1_767_323_045_000);
        assert_eq!(int("parse_epoch(1767323045.5, \"s\")"), 1_767_323_045_500);
        assert_eq!(
            int("parse_epoch(\"1767323045123\", \"ms\")"),
            1_767_323_045_123
        );
        assert_eq!(
            int("parse_epoch(1767323045123456, \"us\")"),
            1_767_323_045_123
        );
        assert_eq!(
            error("parse_epoch(1, \"days\")"),
            "parse_epoch: unknown unit \"days\": use \"s\", \"ms\", \"us\" or \"ns\""
        );
    }

    #[test]
    fn formats_in_utc_or_an_offset() {
        assert_eq!(
            text("format_timestamp(1767323045250)"),
            "2026-01-02T03:04:05.250Z"
        );
        assert_eq!(
            text("format_timestamp(1767323045250, \"%Y-%m-%d %H:%M\")"),
            "2026-01-02 03:04"
        );
        assert_eq!(
            text("format_timestamp(1767323045250, \"%Y-%m-%dT%H:%M:%S%:z\", \"-08:00\")"),
            "2026-01-01T19:04:05-08:00"
        );
        assert_eq!(
            error("format_timestamp(0, \"%Y-%\")"),
            "format_timestamp: \"%Y-%\" is not a valid strftime format"
        );
        assert_eq!(
            error("format_timestamp(0, \"%Y\", \"CET\")"),
            "format_timestamp: \"CET\" is not a UTC offset such as \"+05:30\" or \"Z\""
        );
    }

    #[test]
    fn adds_durations_and_truncates_to_a_unit() {
        let t = 1_767_323_045_250_i64; // 2026-01-02T03:04:05.250Z, a Friday
        assert_eq!(int("duration_ms(\"1h 30m\")"), 5_400_000);
        assert_eq!(int(&format!("timestamp_add({t}, \"-15m\")")), t - 900_000);
        assert_eq!(
            int(&format!("timestamp_add({t}, \"2days\")")),
            t + 172_800_000
        );
        let at = |unit: &str| {
            text(&format!(
                "format_timestamp(truncate_timestamp({t}, \"{unit}\"))"
            ))
        };
        assert_eq!(at("second"), "2026-01-02T03:04:05.000Z");
        assert_eq!(at("minute"), "2026-01-02T03:04:00.000Z");
        assert_eq!(at("hour"), "2026-01-02T03:00:00.000Z");
        assert_eq!(at("day"), "2026-01-02T00:00:00.000Z");
        assert_eq!(at("week"), "2025-12-29T00:00:00.000Z");
        assert_eq!(at("month"), "2026-01-01T00:00:00.000Z");
        assert_eq!(at("year"), "2026-01-01T00:00:00.000Z");
        // A day in UTC-05:00 began at 05:00 UTC the day before.
        assert_eq!(
            text(&format!(
                "format_timestamp(truncate_timestamp({t}, \"day\", \"-05:00\"))"
            )),
            "2026-01-01T05:00:00.000Z"
        );
        assert_eq!(
            error("duration_ms(\"soon\")"),
            "duration_ms: \"soon\" is not a duration: expected number at 0"
        );
    }
}
