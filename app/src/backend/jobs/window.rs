//! Recurring maintenance windows and start times, in a named time zone (jiff, with the tz
//! database bundled into the binary so hosts without tzdata behave the same).
//!
//! A window spec is `<days> <HH:MM-HH:MM> <time zone>`:
//! - days: `Mon`..`Sun` (or full names), ranges `Mon-Fri` (wrapping: `Fri-Mon`), lists
//!   `Sat,Sun` or `Mon,Wed-Fri`, or `daily`; they name the day the window *starts*;
//! - times: the end may be earlier than the start (the window crosses midnight,
//!   `22:00-02:00`) or `24:00`;
//! - the zone is an IANA name (`Europe/Berlin`) or `UTC`.
//!
//! Local times that do not exist (spring forward) move forward by the gap, ambiguous ones
//! (fall back) take the earlier instant (jiff's "compatible" rule): a `02:00-04:00` window is
//! one hour long on the night clocks go forward and three on the night they go back.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::backend::error::{BackendError, Result};

const EXAMPLE: &str = "e.g. 'Sun 02:00-04:00 Europe/Berlin' or 'Mon-Fri 22:00-02:00 UTC'";
const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const DAY_FULL: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

/// One opening of a window: `[start, end)` in unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occurrence {
    pub start: i64,
    pub end: i64,
}

impl Occurrence {
    pub fn contains(&self, t: i64) -> bool {
        self.start <= t && t < self.end
    }
}

#[derive(Debug, Clone)]
pub struct Window {
    /// Monday-zero.
    days: [bool; 7],
    start_min: i32,
    /// 1..=1440.
    end_min: i32,
    tz: TimeZone,
    spec: String,
}

fn invalid(msg: impl Into<String>) -> BackendError {
    BackendError::Invalid(msg.into())
}

/// Looks up an IANA time zone name (or `UTC`) in the bundled database.
pub fn time_zone(name: &str) -> Result<TimeZone> {
    if name.eq_ignore_ascii_case("utc") || name.eq_ignore_ascii_case("z") {
        return Ok(TimeZone::UTC);
    }
    if name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c)) {
        return Err(invalid("unknown time zone (use an IANA name such as Europe/Berlin, or UTC)"));
    }
    TimeZone::get(name)
        .map_err(|_| invalid(format!("unknown time zone '{name}' (use an IANA name such as Europe/Berlin, or UTC)")))
}

fn day(token: &str) -> Result<usize> {
    let t = token.to_ascii_lowercase();
    DAY_NAMES
        .iter()
        .position(|d| *d == t)
        .or_else(|| DAY_FULL.iter().position(|d| *d == t))
        .ok_or_else(|| {
            let shown: String = token.chars().take(16).collect();
            invalid(format!("window: unknown day '{shown}' (use Mon, Tue, Wed, Thu, Fri, Sat, Sun, ranges like Mon-Fri, or daily)"))
        })
}

fn parse_days(text: &str) -> Result<[bool; 7]> {
    let mut days = [false; 7];
    if text.eq_ignore_ascii_case("daily") || text == "*" {
        return Ok([true; 7]);
    }
    for item in text.split(',') {
        match item.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, day(b)?);
                let mut d = a;
                loop {
                    days[d] = true;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days[day(item)?] = true,
        }
    }
    Ok(days)
}

/// `HH:MM` as minutes since midnight; `24:00` only when `allow_24`.
fn parse_hhmm(text: &str, allow_24: bool) -> Option<i32> {
    let (h, m) = text.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 || !h.chars().chain(m.chars()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) if allow_24 => Some(1440),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

fn clock(minutes: i32) -> Result<Time> {
    let (h, m) = (minutes / 60, minutes % 60);
    Time::new(h as i8, m as i8, 0, 0).map_err(|_| BackendError::Internal("window time out of range".into()))
}

impl Window {
    pub fn parse(spec: &str) -> Result<Window> {
        let tokens: Vec<&str> = spec.split_whitespace().collect();
        let [days, times, zone] = tokens.as_slice() else {
            return Err(invalid(format!("window: expected '<days> <HH:MM-HH:MM> <time zone>', {EXAMPLE}")));
        };
        let days = parse_days(days)?;
        let range_err = || invalid(format!("window: the time range must look like 02:00-04:00 (24-hour clock), {EXAMPLE}"));
        let (a, b) = times.split_once('-').ok_or_else(range_err)?;
        let start_min = parse_hhmm(a, false).ok_or_else(range_err)?;
        let end_min = parse_hhmm(b, true).ok_or_else(range_err)?;
        if start_min == end_min {
            return Err(invalid("window: start and end are the same time (the window would be empty)"));
        }
        let tz = time_zone(zone).map_err(|e| match e {
            BackendError::Invalid(m) => invalid(format!("window: {m}")),
            other => other,
        })?;
        Ok(Window { days, start_min, end_min, tz, spec: tokens.join(" ") })
    }

    /// The spec as given, whitespace normalised.
    pub fn spec(&self) -> &str {
        &self.spec
    }

    fn crosses_midnight(&self) -> bool {
        self.end_min <= self.start_min
    }

    /// The occurrence starting on local date `date`, if the window opens that day (None
    /// also when DST leaves nothing of it, e.g. `02:00-03:00` on a spring-forward night).
    fn occurrence_on(&self, date: Date) -> Result<Option<Occurrence>> {
        let weekday = date.weekday().to_monday_zero_offset() as usize;
        if !self.days.get(weekday).copied().unwrap_or(false) {
            return Ok(None);
        }
        let tzerr = |e: jiff::Error| BackendError::Internal(format!("window: {e}"));
        let start = DateTime::from_parts(date, clock(self.start_min)?).to_zoned_datetime(self.tz.clone()).map_err(tzerr)?;
        let mut end_date = if self.crosses_midnight() { date.tomorrow().map_err(tzerr)? } else { date };
        let mut end_min = self.end_min;
        if end_min == 1440 {
            end_date = end_date.tomorrow().map_err(tzerr)?;
            end_min = 0;
        }
        let end = DateTime::from_parts(end_date, clock(end_min)?).to_zoned_datetime(self.tz.clone()).map_err(tzerr)?;
        let (start, end) = (start.timestamp().as_second(), end.timestamp().as_second());
        Ok((end > start).then_some(Occurrence { start, end }))
    }

    /// The occurrence open at `now`, else the next one. None only if the window never opens
    /// within the next eight days (cannot happen for a parsed spec).
    pub fn current_or_next(&self, now: i64) -> Result<Option<Occurrence>> {
        let tzerr = |e: jiff::Error| BackendError::Internal(format!("window: {e}"));
        let today = Timestamp::from_second(now).map_err(tzerr)?.to_zoned_datetime(self.tz.clone()).date();
        let mut date = today.yesterday().map_err(tzerr)?;
        for _ in 0..10 {
            if let Some(o) = self.occurrence_on(date)? {
                if o.end > now {
                    return Ok(Some(o));
                }
            }
            date = date.tomorrow().map_err(tzerr)?;
        }
        Ok(None)
    }

    /// The occurrence open at `now`, if any.
    pub fn open_at(&self, now: i64) -> Result<Option<Occurrence>> {
        Ok(self.current_or_next(now)?.filter(|o| o.contains(now)))
    }
}

/// A start time: RFC 3339 (`2030-01-31T02:00:00Z`), or a local time with an optional zone
/// (`2030-01-31 02:00 Europe/Berlin`, `2030-01-31T02:00`; UTC when no zone is given).
pub fn parse_at(text: &str) -> Result<i64> {
    let text = text.trim();
    let bad = || {
        invalid("start time: use 'YYYY-MM-DD HH:MM' with an optional time zone, e.g. '2030-01-31 02:00 Europe/Berlin'")
    };
    if text.is_empty() || text.len() > 80 {
        return Err(bad());
    }
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Ok(ts.as_second());
    }
    let (civil, tz) = match text.rsplit_once(' ') {
        Some((head, zone)) if zone.chars().any(|c| c.is_ascii_alphabetic()) => (head.trim(), time_zone(zone)?),
        _ => (text, TimeZone::UTC),
    };
    let dt: DateTime = civil.parse().map_err(|_| bad())?;
    let zoned = dt.to_zoned_datetime(tz).map_err(|_| bad())?;
    Ok(zoned.timestamp().as_second())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn ts(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_second()
    }

    fn occ(w: &Window, now: &str) -> (String, String) {
        let o = w.current_or_next(ts(now)).unwrap().unwrap();
        let f = |t: i64| Timestamp::from_second(t).unwrap().to_string();
        (f(o.start), f(o.end))
    }

    #[test]
    fn weekly_window_across_both_dst_changes_in_berlin() {
        let w = Window::parse("Sun 02:00-04:00 Europe/Berlin").unwrap();
        // Winter time (CET, UTC+1).
        assert_eq!(occ(&w, "2025-03-20T12:00:00Z"), ("2025-03-23T01:00:00Z".into(), "2025-03-23T03:00:00Z".into()));
        // 2025-03-30: 02:00 CET does not exist (clocks jump to 03:00 CEST): the window opens at
        // 03:00 CEST and lasts one hour.
        assert_eq!(occ(&w, "2025-03-24T00:00:00Z"), ("2025-03-30T01:00:00Z".into(), "2025-03-30T02:00:00Z".into()));
        // Summer time (CEST, UTC+2).
        assert_eq!(occ(&w, "2025-03-30T02:00:00Z"), ("2025-04-06T00:00:00Z".into(), "2025-04-06T02:00:00Z".into()));
        // 2025-10-26: 02:00 happens twice; the earlier (CEST) one opens a three-hour window.
        assert_eq!(occ(&w, "2025-10-20T00:00:00Z"), ("2025-10-26T00:00:00Z".into(), "2025-10-26T03:00:00Z".into()));
        // Inside an occurrence: that occurrence; at its end: the next week's.
        assert_eq!(occ(&w, "2025-10-26T02:59:59Z").0, "2025-10-26T00:00:00Z");
        assert_eq!(occ(&w, "2025-10-26T03:00:00Z").0, "2025-11-02T01:00:00Z");
        assert!(w.open_at(ts("2025-10-26T02:00:00Z")).unwrap().is_some());
        assert!(w.open_at(ts("2025-10-26T03:00:00Z")).unwrap().is_none());
    }

    #[test]
    fn window_crossing_midnight_and_new_york_dst() {
        let w = Window::parse("Mon-Fri 22:00-02:00 UTC").unwrap();
        // Friday night runs into Saturday; Saturday itself opens nothing.
        assert_eq!(occ(&w, "2025-06-07T01:00:00Z"), ("2025-06-06T22:00:00Z".into(), "2025-06-07T02:00:00Z".into()));
        assert_eq!(occ(&w, "2025-06-07T02:00:00Z"), ("2025-06-09T22:00:00Z".into(), "2025-06-10T02:00:00Z".into()));
        let ny = Window::parse("sat,SUN 23:30-01:30 America/New_York").unwrap();
        // 2025-03-09 is the spring-forward Sunday (02:00 -> 03:00 EDT); the Saturday window
        // opens 23:30 EST (04:30Z) and ends 01:30 EST (06:30Z) before the change.
        assert_eq!(occ(&ny, "2025-03-08T12:00:00Z"), ("2025-03-09T04:30:00Z".into(), "2025-03-09T06:30:00Z".into()));
        // Sunday's window is in EDT (UTC-4).
        assert_eq!(occ(&ny, "2025-03-09T07:00:00Z"), ("2025-03-10T03:30:00Z".into(), "2025-03-10T05:30:00Z".into()));
        let daily = Window::parse("daily 00:00-24:00 UTC").unwrap();
        assert_eq!(occ(&daily, "2025-01-01T05:00:00Z"), ("2025-01-01T00:00:00Z".into(), "2025-01-02T00:00:00Z".into()));
        let wrap = Window::parse("Fri-Mon 10:00-11:00 UTC").unwrap();
        // 2025-06-10 is a Tuesday: next is Friday.
        assert_eq!(occ(&wrap, "2025-06-10T12:00:00Z").0, "2025-06-13T10:00:00Z");
        assert_eq!(occ(&wrap, "2025-06-16T10:30:00Z").0, "2025-06-16T10:00:00Z");
    }

    #[test]
    fn bad_specs_get_clear_errors() {
        let msg = |s: &str| match Window::parse(s) {
            Err(BackendError::Invalid(m)) => m,
            other => panic!("{s}: expected Invalid, got {other:?}"),
        };
        assert!(msg("Sun 02:00-04:00").contains("expected '<days> <HH:MM-HH:MM> <time zone>'"));
        assert!(msg("Sunn 02:00-04:00 UTC").contains("unknown day 'Sunn'"));
        assert!(msg("Sun 2am-4am UTC").contains("time range"));
        assert!(msg("Sun 02:00-25:00 UTC").contains("time range"));
        assert!(msg("Sun 02:00-02:00 UTC").contains("same time"));
        assert!(msg("Sun 02:00-04:00 Europe/Berln").contains("unknown time zone 'Europe/Berln'"));
        assert!(msg("Sun 02:00-04:00 ../../etc/passwd").contains("unknown time zone"));
        assert!(msg("").contains("expected"));
    }

    #[test]
    fn start_times_parse_with_zones() {
        assert_eq!(parse_at("2030-01-31T02:00:00Z").unwrap(), ts("2030-01-31T02:00:00Z"));
        assert_eq!(parse_at("2030-01-31 02:00").unwrap(), ts("2030-01-31T02:00:00Z"));
        assert_eq!(parse_at("2030-01-31T02:00").unwrap(), ts("2030-01-31T02:00:00Z"));
        assert_eq!(parse_at("2030-01-31 02:00 Europe/Berlin").unwrap(), ts("2030-01-31T01:00:00Z"));
        assert_eq!(parse_at("2030-07-31 02:00 Europe/Berlin").unwrap(), ts("2030-07-31T00:00:00Z"));
        assert!(matches!(parse_at("tomorrow"), Err(BackendError::Invalid(_))));
        assert!(matches!(parse_at("2030-01-31 02:00 Mars/Base"), Err(BackendError::Invalid(_))));
        assert!(matches!(parse_at(""), Err(BackendError::Invalid(_))));
    }
}
