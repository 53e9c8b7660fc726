//! What an analytics question (or an export) reads: whose data, which time window, which
//! filters. Built once per request from the caller and the query parameters; the stores take
//! it as is, so tenant scoping cannot be forgotten by a handler.

use chrono::{DateTime, Duration, DurationRound, Utc};
use sea_orm::{ColumnTrait, Condition};
use uuid::Uuid;

use crate::{
    Error, Result,
    config::RetentionSettings,
    ids::TenantId,
    metering::{retention::horizon, rollup::Granularity},
    tenancy::{Permission, Principal},
};

/// The longest window one question may span.
pub const MAX_WINDOW: Duration = Duration::days(3 * 366);
/// The window when `from` and `to` are both omitted.
pub const DEFAULT_WINDOW: Duration = Duration::hours(24);

/// Whose usage a question reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tenants {
    One(TenantId),
    /// Platform administrators only: every tenant's.
    All,
}

impl Tenants {
    /// Merchants read their active tenant (naming another is a 403); platform administrators
    /// read every tenant's, or the one they name. `permission` is what the caller's role must
    /// grant (analytics: `Read`; exports: `ReadBilling`).
    pub fn for_principal(
        principal: &Principal,
        tenant: Option<TenantId>,
        permission: Permission,
    ) -> Result<Self> {
        if principal.is_platform_admin {
            principal.admin_scope()?;
            return Ok(tenant.map_or(Tenants::All, Tenants::One));
        }
        let scope = principal.tenant_scope()?;
        scope.require(permission)?;
        match tenant {
            Some(other) if other != scope.tenant_id() => Err(Error::forbidden(
                "Only platform administrators may read another tenant's usage.",
            )),
            _ => Ok(Tenants::One(scope.tenant_id())),
        }
    }
}

/// A half-open time window `[from, to)`, both on whole minutes (the finest rollup bucket):
/// `from` is rounded down and `to` up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Window {
    /// `from`/`to` as given, defaulting to the 24 hours up to `now` (or up to `to`, or from
    /// `from`). 400 when `from` is not before `to` or the span exceeds [`MAX_WINDOW`].
    pub fn new(
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Self> {
        let (from, to) = match (from, to) {
            (Some(from), Some(to)) => (from, to),
            (Some(from), None) => (from, now.max(from + Duration::minutes(1))),
            (None, Some(to)) => (to - DEFAULT_WINDOW, to),
            (None, None) => (now - DEFAULT_WINDOW, now),
        };
        if from >= to {
            return Err(Error::bad_request(format!(
                "`from` ({}) must be before `to` ({}).",
                from.to_rfc3339(),
                to.to_rfc3339()
            )));
        }
        if to - from > MAX_WINDOW {
            return Err(Error::bad_request(format!(
                "The window may span at most {} days.",
                MAX_WINDOW.num_days()
            )));
        }
        let from = Granularity::Minute.truncate(from);
        let floor = Granularity::Minute.truncate(to);
        let to = if floor == to {
            to
        } else {
            floor + Duration::minutes(1)
        };
        Ok(Self { from, to })
    }

    /// The window with each edge older than a granularity's retention rounded outward to the
    /// next coarser bucket: minute rollups kept 7 days mean an edge 10 days ago is counted
    /// from its whole hour (the minute rows there are gone).
    pub fn within_retention(self, retention: &RetentionSettings, now: DateTime<Utc>) -> Self {
        let coarser = |at: DateTime<Utc>, up: bool| {
            let mut at = at;
            for (finer, coarse) in [
                (Granularity::Minute, Granularity::Hour),
                (Granularity::Hour, Granularity::Day),
            ] {
                if at < horizon(now, retention.days(finer)) {
                    let floor = coarse.truncate(at);
                    at = if up && floor != at {
                        floor + coarse.step()
                    } else {
                        floor
                    };
                }
            }
            at
        };
        Self {
            from: coarser(self.from, false),
            to: coarser(self.to, true),
        }
    }

    pub fn span(&self) -> Duration {
        self.to - self.from
    }

    /// The granularity chosen when a question does not name one: minutes up to 6 hours,
    /// hours up to 14 days, days beyond.
    pub fn auto_granularity(&self) -> Granularity {
        match self.span() {
            span if span <= Duration::hours(6) => Granularity::Minute,
            span if span <= Duration::days(14) => Granularity::Hour,
            _ => Granularity::Day,
        }
    }

    /// The window before this one, of the same length (for trends).
    pub fn previous(&self) -> Window {
        Window {
            from: self.from - self.span(),
            to: self.from,
        }
    }

    /// The window widened outward to whole buckets of `granularity`.
    pub fn aligned(&self, granularity: Granularity) -> Window {
        let from = granularity.truncate(self.from);
        let floor = granularity.truncate(self.to);
        let to = if floor == self.to {
            self.to
        } else {
            floor + granularity.step()
        };
        Window { from, to }
    }

    /// Covers the window with as few rollup buckets as possible: whole days in the middle,
    /// whole hours and then minutes at the edges. Each part is `(granularity, from, to)` with
    /// `from`/`to` on that granularity's boundaries; the parts do not overlap.
    pub fn cover(&self) -> Vec<(Granularity, Window)> {
        let mut parts = Vec::new();
        cover(*self, Granularity::Day, &mut parts);
        parts
    }
}

fn cover(window: Window, granularity: Granularity, parts: &mut Vec<(Granularity, Window)>) {
    if window.from >= window.to {
        return;
    }
    let finer = match granularity {
        Granularity::Day => Some(Granularity::Hour),
        Granularity::Hour => Some(Granularity::Minute),
        Granularity::Minute => None,
    };
    let Some(finer) = finer else {
        parts.push((granularity, window));
        return;
    };
    let step = granularity.step();
    let first = ceil(window.from, granularity);
    let last = granularity.truncate(window.to);
    if first >= last {
        // No whole bucket of this size inside: use the finer one throughout.
        cover(window, finer, parts);
        return;
    }
    debug_assert!((last - first).num_seconds() % step.num_seconds() == 0);
    cover(
        Window {
            from: window.from,
            to: first,
        },
        finer,
        parts,
    );
    parts.push((
        granularity,
        Window {
            from: first,
            to: last,
        },
    ));
    cover(
        Window {
            from: last,
            to: window.to,
        },
        finer,
        parts,
    );
}

fn ceil(at: DateTime<Utc>, granularity: Granularity) -> DateTime<Utc> {
    let floor = granularity.truncate(at);
    if floor == at {
        at
    } else {
        floor + granularity.step()
    }
}

/// Narrows a question to some of the traffic; every filter is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub key_id: Option<Uuid>,
    /// An exact route template (`/v1/users/{id}`).
    pub endpoint: Option<String>,
    /// An upper-case method.
    pub method: Option<String>,
    /// 1–5 for 1xx–5xx.
    pub status_class: Option<i16>,
}

impl Filter {
    /// The filter as a condition on `usage_rollups`.
    pub fn on_rollups(&self) -> Condition {
        use crate::entities::usage_rollups::Column;
        self.on_rollup_columns(
            Column::KeyId,
            Column::Endpoint,
            Column::Method,
            Column::StatusClass,
        )
    }

    /// The filter as a condition on `usage_rollup_totals` (which has neither keys nor
    /// endpoints: see [`Filter::by_tenant_only`]).
    pub fn on_totals(&self) -> Condition {
        use crate::entities::usage_rollup_totals::Column;
        self.on_rollup_columns(
            Column::KeyId,
            Column::Endpoint,
            Column::Method,
            Column::StatusClass,
        )
    }

    /// Whether the tenant totals can answer: no key and no endpoint is asked for.
    pub fn by_tenant_only(&self) -> bool {
        self.key_id.is_none() && self.endpoint.is_none()
    }

    fn on_rollup_columns<C: ColumnTrait>(
        &self,
        key: C,
        endpoint: C,
        method: C,
        class: C,
    ) -> Condition {
        let condition = self.common(key, endpoint, method);
        match self.status_class {
            Some(value) => condition.add(class.eq(value)),
            None => condition,
        }
    }

    /// The filter as a condition on `usage_events`: a status class is a range of codes, with
    /// the classes of `metering::rollup::status_class` (below 200 is 1xx, 500 and up 5xx).
    pub fn on_events(&self) -> Condition {
        use crate::entities::usage_events::Column;
        let condition = self.common(Column::KeyId, Column::Endpoint, Column::Method);
        match self.status_class {
            None => condition,
            Some(1) => condition.add(Column::StatusCode.lt(200)),
            Some(5) => condition.add(Column::StatusCode.gte(500)),
            Some(class) => condition.add(Column::StatusCode.between(class * 100, class * 100 + 99)),
        }
    }

    fn common<C: ColumnTrait>(&self, key: C, endpoint: C, method: C) -> Condition {
        let mut condition = Condition::all();
        if let Some(id) = self.key_id {
            condition = condition.add(key.eq(id));
        }
        if let Some(value) = &self.endpoint {
            condition = condition.add(endpoint.eq(value.as_str()));
        }
        if let Some(value) = &self.method {
            condition = condition.add(method.eq(value.as_str()));
        }
        condition
    }

    /// Parses a `status_class` parameter: `2xx` (or `2`) … `5xx`.
    pub fn parse_status_class(raw: &str) -> Result<i16> {
        let digit = raw.strip_suffix("xx").unwrap_or(raw);
        match digit.parse::<i16>() {
            Ok(class @ 1..=5) => Ok(class),
            _ => Err(Error::bad_request(format!(
                "`status_class` must be one of 1xx, 2xx, 3xx, 4xx, 5xx (got `{raw}`)."
            ))),
        }
    }
}

/// One analytics question.
#[derive(Clone, Debug)]
pub struct Question {
    pub tenants: Tenants,
    pub window: Window,
    pub filter: Filter,
}

/// `at` truncated to whole seconds, for display.
pub fn whole_seconds(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(Duration::seconds(1)).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap()
    }

    #[test]
    fn the_cover_uses_days_then_hours_then_minutes_without_gaps_or_overlap() {
        let window = Window {
            from: at(20, 22, 30),
            to: at(23, 1, 15),
        };
        let parts = window.cover();
        let expected = vec![
            (
                Granularity::Minute,
                Window {
                    from: at(20, 22, 30),
                    to: at(20, 23, 0),
                },
            ),
            (
                Granularity::Hour,
                Window {
                    from: at(20, 23, 0),
                    to: at(21, 0, 0),
                },
            ),
            (
                Granularity::Day,
                Window {
                    from: at(21, 0, 0),
                    to: at(23, 0, 0),
                },
            ),
            (
                Granularity::Hour,
                Window {
                    from: at(23, 0, 0),
                    to: at(23, 1, 0),
                },
            ),
            (
                Granularity::Minute,
                Window {
                    from: at(23, 1, 0),
                    to: at(23, 1, 15),
                },
            ),
        ];
        assert_eq!(parts, expected);
        let short = Window {
            from: at(20, 10, 5),
            to: at(20, 10, 50),
        };
        assert_eq!(short.cover(), vec![(Granularity::Minute, short)]);
    }

    #[test]
    fn windows_default_round_outward_and_reject_nonsense() {
        let now = at(23, 10, 0) + Duration::seconds(30);
        let w = Window::new(None, None, now).unwrap();
        assert_eq!((w.from, w.to), (at(22, 10, 0), at(23, 10, 1)));
        assert!(Window::new(Some(now), Some(now), now).is_err());
        assert!(Window::new(Some(at(1, 0, 0) - Duration::days(2000)), Some(now), now).is_err());
        assert_eq!(Filter::parse_status_class("4xx").unwrap(), 4);
        assert!(Filter::parse_status_class("6xx").is_err());
    }

    #[test]
    fn edges_older_than_a_granularity_s_retention_round_to_coarser_buckets() {
        let retention = RetentionSettings {
            events_days: 90,
            minute_rollups_days: 1,
            hour_rollups_days: 2,
            day_rollups_days: 30,
        };
        let now = at(23, 12, 0);
        let recent = Window {
            from: at(23, 10, 7),
            to: at(23, 11, 59),
        };
        assert_eq!(recent.within_retention(&retention, now), recent);
        let older = Window {
            from: at(21, 8, 7),
            to: at(22, 8, 15),
        };
        let expected = Window {
            from: at(21, 0, 0),
            to: at(22, 9, 0),
        };
        assert_eq!(older.within_retention(&retention, now), expected);
    }
}
