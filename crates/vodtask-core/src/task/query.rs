//! ListTasks and GetTaskOverview: filters, keyset cursors, counters.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::{Task, TaskStatus, TaskType};
use crate::error::{Error, Result};
use crate::ids::FileId;
use crate::time::{Timestamp, hour_of};

pub const DEFAULT_LIMIT: u32 = 10;
pub const MAX_LIMIT: u32 = 100;

/// after <= t < before; either side optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub after: Option<Timestamp>,
    pub before: Option<Timestamp>,
}

impl TimeRange {
    pub fn validate(&self, field: &str) -> Result<()> {
        if let (Some(a), Some(b)) = (self.after, self.before)
            && a > b
        {
            return Err(Error::invalid(field, "after must not be later than before"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortBy {
    #[default]
    CreateTime,
    /// Only tasks that have a finish time are listed.
    FinishTime,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortOrder {
    Asc,
    #[default]
    Desc,
}

/// Where the previous page ended: the sort key and the store's tie-breaker
/// (a sequence number unique per task).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub key: i64,
    pub tie: i64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskQuery {
    pub status: Option<TaskStatus>,
    pub task_type: Option<TaskType>,
    pub file_id: Option<FileId>,
    pub create_time: TimeRange,
    pub finish_time: TimeRange,
    pub sort_by: SortBy,
    pub order: SortOrder,
    pub limit: u32,
    pub after: Option<Position>,
}

impl TaskQuery {
    /// Builds a query from the raw request: limit 0 means the default; the
    /// token must come from a query with the same filters.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        status: Option<TaskStatus>,
        task_type: Option<TaskType>,
        file_id: Option<FileId>,
        create_time: TimeRange,
        finish_time: TimeRange,
        sort_by: SortBy,
        order: SortOrder,
        limit: i64,
        scroll_token: &str,
    ) -> Result<Self> {
        create_time.validate("create_time")?;
        finish_time.validate("finish_time")?;
        let limit = match limit {
            0 => DEFAULT_LIMIT,
            1..=100 => limit as u32,
            _ => {
                return Err(Error::invalid(
                    "limit",
                    format!("must be within 1..{MAX_LIMIT}, got {limit}"),
                ));
            }
        };
        let mut q = TaskQuery {
            status,
            task_type,
            file_id,
            create_time,
            finish_time,
            sort_by,
            order,
            limit,
            after: None,
        };
        if !scroll_token.is_empty() {
            q.after = Some(q.decode_token(scroll_token)?);
        }
        Ok(q)
    }

    /// The scroll token for the page that follows `last`.
    pub fn token_after(&self, last: Position) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "1:{}:{}:{}",
            last.key,
            last.tie,
            self.filter_digest()
        ))
    }

    fn decode_token(&self, token: &str) -> Result<Position> {
        let bad = || Error::invalid("scroll_token", "is not a token returned by ListTasks");
        let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let mut parts = raw.split(':');
        let (Some("1"), Some(key), Some(tie), Some(digest), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(bad());
        };
        if digest != self.filter_digest() {
            return Err(Error::invalid(
                "scroll_token",
                "belongs to a query with other filters or sort; keep them unchanged while paging",
            ));
        }
        Ok(Position {
            key: key.parse().map_err(|_| bad())?,
            tie: tie.parse().map_err(|_| bad())?,
        })
    }

    /// A short digest of everything but limit and position, so that a token is
    /// not silently reused with other filters.
    fn filter_digest(&self) -> String {
        let text = format!(
            "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
            self.status,
            self.task_type,
            self.file_id,
            self.create_time,
            self.finish_time,
            self.sort_by,
            self.order
        );
        hex::encode(&Sha256::digest(text.as_bytes())[..6])
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskPage {
    pub tasks: Vec<Task>,
    /// Empty when there is no further page.
    pub scroll_token: String,
}

/// Create-time range in whole UTC hours: [first_hour, end_hour).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HourRange {
    pub first_hour: Option<i64>,
    pub end_hour: Option<i64>,
}

impl HourRange {
    /// Widens a range outward to whole hours.
    pub fn covering(range: TimeRange) -> Self {
        HourRange {
            first_hour: range.after.map(hour_of),
            end_hour: range.before.map(|b| {
                let h = hour_of(b);
                if b.timestamp().rem_euclid(3600) == 0 && b.timestamp_subsec_nanos() == 0 {
                    h
                } else {
                    h + 1
                }
            }),
        }
    }

    pub fn is_unbounded(&self) -> bool {
        self.first_hour.is_none() && self.end_hour.is_none()
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overview {
    pub by_status: Vec<(TaskStatus, i64)>,
    pub by_type: Vec<(TaskType, i64)>,
    pub queue_depth: i64,
    pub running: i64,
    pub counted: HourRange,
}

impl Overview {
    pub fn total(&self) -> i64 {
        self.by_status.iter().map(|(_, n)| n).sum()
    }

    /// The overview of `range`, from the store's counters: `counted` holds
    /// `(status code, type code, n)` for the range, `all_time` the same of
    /// every hour (queue depth and running are counted now, whatever the
    /// range).
    pub fn from_counts(
        range: HourRange,
        counted: &[(i64, i64, i64)],
        all_time: &[(i64, i64, i64)],
    ) -> Overview {
        let sum = |matches: &dyn Fn(&(i64, i64, i64)) -> bool, counts: &[(i64, i64, i64)]| {
            counts.iter().filter(|c| matches(c)).map(|c| c.2).sum()
        };
        Overview {
            by_status: TaskStatus::ALL
                .into_iter()
                .map(|s| (s, sum(&|c| c.0 == s.code(), counted)))
                .collect(),
            by_type: TaskType::ALL
                .into_iter()
                .map(|t| (t, sum(&|c| c.1 == t.code(), counted)))
                .collect(),
            queue_depth: sum(&|c| c.0 == TaskStatus::Waiting.code(), all_time),
            running: sum(&|c| c.0 == TaskStatus::Processing.code(), all_time),
            counted: range,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn token_round_trips_and_is_bound_to_filters() {
        let q = TaskQuery::new(
            None,
            None,
            None,
            TimeRange::default(),
            TimeRange::default(),
            SortBy::CreateTime,
            SortOrder::Desc,
            5,
            "",
        )
        .expect("valid");
        let token = q.token_after(Position { key: 42, tie: 7 });
        let next = TaskQuery::new(
            None,
            None,
            None,
            TimeRange::default(),
            TimeRange::default(),
            SortBy::CreateTime,
            SortOrder::Desc,
            5,
            &token,
        )
        .expect("same filters");
        assert_eq!(next.after, Some(Position { key: 42, tie: 7 }));
        let other = TaskQuery::new(
            Some(TaskStatus::Waiting),
            None,
            None,
            TimeRange::default(),
            TimeRange::default(),
            SortBy::CreateTime,
            SortOrder::Desc,
            5,
            &token,
        );
        assert!(
            matches!(other, Err(Error::InvalidArgument { field, .. }) if field == "scroll_token")
        );
        let garbage = TaskQuery::new(
            None,
            None,
            None,
            TimeRange::default(),
            TimeRange::default(),
            SortBy::CreateTime,
            SortOrder::Desc,
            5,
            "%%%",
        );
        assert!(garbage.is_err());
    }

    #[test]
    fn limit_rules() {
        let q = |limit| {
            TaskQuery::new(
                None,
                None,
                None,
                TimeRange::default(),
                TimeRange::default(),
                SortBy::CreateTime,
                SortOrder::Desc,
                limit,
                "",
            )
        };
        assert_eq!(q(0).expect("default").limit, 10);
        assert_eq!(q(100).expect("max").limit, 100);
        assert!(q(101).is_err());
        assert!(q(-1).is_err());
    }

    #[test]
    fn hour_range_widens_outward() {
        let t = |h, m| {
            Utc.with_ymd_and_hms(2026, 1, 1, h, m, 0)
                .single()
                .expect("time")
        };
        let r = HourRange::covering(TimeRange {
            after: Some(t(3, 30)),
            before: Some(t(5, 0)),
        });
        assert_eq!(r.end_hour.zip(r.first_hour).map(|(e, f)| e - f), Some(2));
        let r = HourRange::covering(TimeRange {
            after: Some(t(3, 0)),
            before: Some(t(5, 1)),
        });
        assert_eq!(r.end_hour.zip(r.first_hour).map(|(e, f)| e - f), Some(3));
    }
}
