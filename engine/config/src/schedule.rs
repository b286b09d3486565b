//! Active hours of a personnel rule: `schedule = "Mon-Fri 06:00-18:00"`.
//!
//! A schedule is one or more spans separated by `;`. A span is optional days then a time
//! range: `Mon-Fri 06:00-18:00`, `Sat,Sun 08:00-12:00`, `daily 22:00-06:00`, `06:00-18:00`
//! (every day). Days are `Mon`..`Sun` (full names too, any case), single or as ranges that
//! may wrap (`Fri-Mon`); `daily` or no days means every day. Times are `HH:MM`, the end
//! may be `24:00`; a range that ends at or before its start runs overnight into the next
//! day (`Mon 22:00-06:00` is Monday 22:00 to Tuesday 06:00). Times are local to the rule's
//! `timezone`.

use chrono::{Datelike, Timelike};

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    spans: Vec<Span>,
}

/// One span: days (bit 0 = Monday) and minutes after midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    days: u8,
    from: u32,
    to: u32,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day(s: &str) -> Option<u32> {
    let s = s.trim().to_ascii_lowercase();
    let full = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    (0..7u32).find(|&i| s == DAYS[i as usize] || s == full[i as usize])
}

fn minutes(s: &str, end: bool) -> Result<u32, String> {
    let s = s.trim();
    if end && s == "24:00" {
        return Ok(24 * 60);
    }
    let t = chrono::NaiveTime::parse_from_str(s, "%H:%M")
        .map_err(|_| format!("{s:?} is not a time: write HH:MM, e.g. 06:00"))?;
    Ok(t.hour() * 60 + t.minute())
}

impl Schedule {
    /// Parses a schedule; the error says which part is wrong and what is expected.
    pub fn parse(s: &str) -> Result<Schedule, String> {
        let hint =
            "expected e.g. \"Mon-Fri 06:00-18:00\", \"Sat,Sun 08:00-12:00; daily 22:00-06:00\"";
        let mut spans = Vec::new();
        for part in s.split(';') {
            let part = part.trim();
            if part.is_empty() {
                return Err(format!("{s:?} has an empty span; {hint}"));
            }
            let (days_s, range) = match part.rsplit_once(char::is_whitespace) {
                Some((d, r)) => (d.trim(), r),
                None => ("daily", part),
            };
            let mut days = 0u8;
            if days_s.eq_ignore_ascii_case("daily") {
                days = 0x7f;
            } else {
                for item in days_s.split(',') {
                    let bad = |w: &str| format!("{:?} is not a day (Mon..Sun); {hint}", w.trim());
                    match item.split_once('-') {
                        Some((a, b)) => {
                            let (a, b) =
                                (day(a).ok_or_else(|| bad(a))?, day(b).ok_or_else(|| bad(b))?);
                            let mut d = a;
                            loop {
                                days |= 1 << d;
                                if d == b {
                                    break;
                                }
                                d = (d + 1) % 7;
                            }
                        }
                        None => days |= 1 << day(item).ok_or_else(|| bad(item))?,
                    }
                }
            }
            let (from, to) = range
                .split_once('-')
                .ok_or_else(|| format!("{range:?} is not a time range HH:MM-HH:MM; {hint}"))?;
            let (from, to) = (minutes(from, false)?, minutes(to, true)?);
            spans.push(Span { days, from, to });
        }
        Ok(Schedule { spans })
    }

    /// Whether local time `t` is inside the schedule.
    pub fn active<T: Datelike + Timelike>(&self, t: &T) -> bool {
        let d = t.weekday().num_days_from_monday();
        let prev = (d + 6) % 7;
        let m = t.hour() * 60 + t.minute();
        self.spans.iter().any(|s| {
            let on = |day: u32| s.days & (1 << day) != 0;
            if s.from < s.to {
                on(d) && (s.from..s.to).contains(&m)
            } else {
                (on(d) && m >= s.from) || (on(prev) && m < s.to)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> chrono::NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, 0)
            .unwrap()
    }

    #[test]
    fn weekdays_weekends_and_overnight() {
        // 2026-06-01 is a Monday.
        let s = Schedule::parse("Mon-Fri 06:00-18:00").unwrap();
        assert!(s.active(&at(2026, 6, 1, 6, 0)));
        assert!(s.active(&at(2026, 6, 5, 17, 59)));
        assert!(!s.active(&at(2026, 6, 5, 18, 0)));
        assert!(!s.active(&at(2026, 6, 6, 10, 0)), "Saturday");
        let n = Schedule::parse("sat,Sunday 08:00-12:00; Fri-Mon 22:00-06:00").unwrap();
        assert!(n.active(&at(2026, 6, 6, 9, 0)));
        assert!(n.active(&at(2026, 6, 1, 23, 0)), "Monday night");
        assert!(
            n.active(&at(2026, 6, 2, 5, 59)),
            "Tuesday early: Monday's night"
        );
        assert!(!n.active(&at(2026, 6, 3, 5, 0)), "Wednesday early");
        let all = Schedule::parse("00:00-24:00").unwrap();
        assert!(all.active(&at(2026, 6, 3, 23, 59)) && all.active(&at(2026, 6, 3, 0, 0)));
        assert!(Schedule::parse("daily 06:00-18:00").is_ok());
        for bad in [
            "Mon-Fry 06:00-18:00",
            "Mon-Fri 6-18",
            "Mon-Fri 06:00",
            "Mon-Fri 25:00-26:00",
            "",
            "Mon 06:00-07:00;",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}
