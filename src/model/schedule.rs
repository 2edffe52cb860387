//! Schedules of commands that run at times (`when_to_run: { every: 10m }`
//! or `{ cron: "*/5 * * * *" }`). Pure: the next run is computed from an
//! instant given, never from the clock, so the rules are tested with fixed
//! instants and time zones.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// When a scheduled command runs. Each run goes to completion; a run never
/// overlaps the previous one of the same member.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// Every interval, counted from the start of the previous run.
    Every(Duration),
    /// At each minute a 5-field cron expression matches, in local time.
    Cron { expression: String, cron: Box<Cron> },
}

/// The five fields of a cron expression, in order, with what each takes.
const FIELDS: [(&str, &str); 5] = [
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day of month", "1-31"),
    ("month", "1-12 or JAN-DEC"),
    ("day of week", "0-7 (0 and 7 are Sunday) or SUN-SAT"),
];

/// Why a cron expression is not valid, and which part of it is at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronError {
    pub message: String,
    pub help: String,
    /// Byte offset and length of the faulty field in the expression, when one is.
    pub field: Option<(usize, usize)>,
}

fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
}

impl Schedule {
    /// Read a 5-field cron expression (minute hour day-of-month month
    /// day-of-week), or an alias such as `@daily`.
    pub fn cron(expression: &str) -> Result<Schedule, CronError> {
        let fields: Vec<(usize, &str)> = expression
            .split_whitespace()
            .map(|f| (f.as_ptr() as usize - expression.as_ptr() as usize, f))
            .collect();
        let shape = "minute hour day-of-month month day-of-week, e.g. `*/5 * * * *`";
        if fields.len() != 5 && !expression.trim_start().starts_with('@') {
            return Err(CronError {
                message: format!(
                    "a cron expression has 5 fields; `{expression}` has {}",
                    fields.len()
                ),
                help: format!("write {shape}"),
                field: None,
            });
        }
        let parser = parser();
        let cron = parser.parse(expression).map_err(|e| {
            // The first field that is wrong on its own, the others being `*`.
            let culprit = (0..fields.len().min(5)).find(|&i| {
                let alone: Vec<&str> = (0..5)
                    .map(|j| if i == j { fields[i].1 } else { "*" })
                    .collect();
                parser.parse(&alone.join(" ")).is_err()
            });
            match culprit {
                Some(i) => CronError {
                    message: format!(
                        "`{}` is not a valid {} in a cron expression",
                        fields[i].1, FIELDS[i].0
                    ),
                    help: format!(
                        "the {} takes {}, `*`, lists (`1,15`), ranges (`1-5`) and steps (`*/10`)",
                        FIELDS[i].0, FIELDS[i].1
                    ),
                    field: Some((fields[i].0, fields[i].1.len())),
                },
                None => CronError {
                    message: format!("`{expression}` is not a valid cron expression: {e}"),
                    help: format!("write {shape}"),
                    field: None,
                },
            }
        })?;
        let schedule = Schedule::Cron {
            expression: expression.to_owned(),
            cron: Box::new(cron),
        };
        // A date that never comes (`0 0 31 2 *`) would never run.
        let start = chrono::Utc
            .with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
            .single()
            .expect("a valid fixed date");
        if schedule.next_after(&start).is_none() {
            return Err(CronError {
                message: format!("`{expression}` never matches a date"),
                help: "check the day of month against the month".to_owned(),
                field: None,
            });
        }
        Ok(schedule)
    }

    /// When the run after `after` starts: for `every`, `after` (the start of
    /// the previous run, or of the stack) plus the interval; for a cron
    /// expression, the first matching minute strictly after `after`, read in
    /// `after`'s time zone. `None` when there is none.
    pub fn next_after<Tz: TimeZone>(&self, after: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        match self {
            Schedule::Every(interval) => after
                .clone()
                .checked_add_signed(TimeDelta::from_std(*interval).ok()?),
            Schedule::Cron { cron, .. } => cron.find_next_occurrence(after, false).ok(),
        }
    }
}

/// `every 10m` or `cron "*/5 * * * *"`.
impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every(interval) => {
                write!(f, "every {}", crate::model::HumanDuration(*interval))
            }
            Schedule::Cron { expression, .. } => write!(f, "cron \"{expression}\""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{FixedOffset, Utc};

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
            .single()
            .expect("a valid date")
    }

    #[test]
    fn every_adds_the_interval_to_the_previous_start() {
        let every = Schedule::Every(Duration::from_secs(600));
        assert_eq!(
            every.next_after(&utc(2024, 5, 1, 12, 0, 0)),
            Some(utc(2024, 5, 1, 12, 10, 0))
        );
        assert_eq!(
            every.next_after(&utc(2024, 12, 31, 23, 55, 30)),
            Some(utc(2025, 1, 1, 0, 5, 30))
        );
    }

    #[test]
    fn cron_gives_the_next_matching_minute_strictly_after() {
        let cases = [
            (
                "*/5 * * * *",
                utc(2024, 5, 1, 12, 3, 10),
                utc(2024, 5, 1, 12, 5, 0),
            ),
            // Exactly on a match: the next one, not the same.
            (
                "*/5 * * * *",
                utc(2024, 5, 1, 12, 5, 0),
                utc(2024, 5, 1, 12, 10, 0),
            ),
            (
                "0 3 * * *",
                utc(2024, 5, 1, 3, 0, 1),
                utc(2024, 5, 2, 3, 0, 0),
            ),
            // 2024-05-03 is a Friday: weekdays 1-5 skip to Monday.
            (
                "30 9 * * 1-5",
                utc(2024, 5, 3, 10, 0, 0),
                utc(2024, 5, 6, 9, 30, 0),
            ),
            (
                "0 0 1 JAN *",
                utc(2024, 5, 1, 0, 0, 0),
                utc(2025, 1, 1, 0, 0, 0),
            ),
            (
                "0 0 29 2 *",
                utc(2024, 3, 1, 0, 0, 0),
                utc(2028, 2, 29, 0, 0, 0),
            ),
            (
                "@hourly",
                utc(2024, 5, 1, 12, 30, 0),
                utc(2024, 5, 1, 13, 0, 0),
            ),
        ];
        for (expression, after, want) in cases {
            let schedule = Schedule::cron(expression).expect(expression);
            assert_eq!(schedule.next_after(&after), Some(want), "{expression}");
        }
    }

    #[test]
    fn cron_reads_the_clock_of_the_time_zone_given() {
        // 03:00 at UTC+2 is 01:00 UTC.
        let zone = FixedOffset::east_opt(2 * 3600).expect("a valid offset");
        let after = zone
            .with_ymd_and_hms(2024, 5, 1, 2, 0, 0)
            .single()
            .expect("a valid date");
        let next = Schedule::cron("0 3 * * *")
            .expect("valid")
            .next_after(&after)
            .expect("a next run");
        assert_eq!(next.with_timezone(&Utc), utc(2024, 5, 1, 1, 0, 0));
    }

    #[test]
    fn invalid_expressions_name_the_field_at_fault() {
        let cases = [
            (
                "61 * * * *",
                "`61` is not a valid minute in a cron expression",
                Some((0, 2)),
            ),
            (
                "* 24 * * *",
                "`24` is not a valid hour in a cron expression",
                Some((2, 2)),
            ),
            (
                "*/5 * * FOO *",
                "`FOO` is not a valid month in a cron expression",
                Some((8, 3)),
            ),
            (
                "* * * * 9",
                "`9` is not a valid day of week in a cron expression",
                Some((8, 1)),
            ),
            (
                "* * *",
                "a cron expression has 5 fields; `* * *` has 3",
                None,
            ),
            (
                "0 * * * * *",
                "a cron expression has 5 fields; `0 * * * * *` has 6",
                None,
            ),
            ("0 0 31 2 *", "`0 0 31 2 *` never matches a date", None),
        ];
        for (expression, message, field) in cases {
            let e = Schedule::cron(expression).expect_err(expression);
            assert_eq!(
                (e.message.as_str(), e.field),
                (message, field),
                "{expression}"
            );
        }
    }

    #[test]
    fn shown_as_written() {
        assert_eq!(
            Schedule::Every(Duration::from_secs(600)).to_string(),
            "every 10m"
        );
        assert_eq!(
            Schedule::cron("*/5 * * * *").expect("valid").to_string(),
            "cron \"*/5 * * * *\""
        );
    }
}
