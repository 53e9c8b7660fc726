//! Event-level pages: `usage_events` rows in `(occurred_at, id)` order, read with a keyset
//! cursor on the `(tenant_id, occurred_at)` index. An export of every tenant (platform
//! administrators) takes the tenants one after another, in id order, each in time order: a
//! global time order would need an index on `occurred_at` alone, which the table lacks.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DerivePartialModel, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Select,
};
use uuid::Uuid;

use super::{
    Chunk, PAGE_ROWS,
    encode::{Cell, Encoder, decimal_millis, event_time, money},
    lookups::Lookups,
};
use crate::{
    Result,
    analytics::{Filter, Question, Tenants, Window},
    entities::usage_events::{self, Column},
    ids::{KeyId, TenantId},
};

pub const COLUMNS: [&str; 18] = [
    "id",
    "occurred_at",
    "tenant_id",
    "key_id",
    "key_name",
    "endpoint",
    "method",
    "status_code",
    "latency_ms",
    "bytes_in",
    "bytes_out",
    "tokens_in",
    "tokens_out",
    "cost",
    "currency",
    "ip",
    "user_agent",
    "source",
];

/// The columns an export reads (not `metadata` or `received_at`).
#[derive(Debug, DerivePartialModel)]
#[sea_orm(entity = "usage_events::Entity")]
struct EventRow {
    id: Uuid,
    occurred_at: DateTime<Utc>,
    tenant_id: Uuid,
    key_id: Option<Uuid>,
    endpoint: String,
    method: String,
    status_code: i16,
    latency_us: i64,
    bytes_in: i64,
    bytes_out: i64,
    tokens_in: i64,
    tokens_out: i64,
    cost_nanos: i64,
    ip: Option<String>,
    user_agent: Option<String>,
    source: String,
}

/// Which tenant's events are read next.
enum TenantCursor {
    /// Reading this tenant's; `last` when no other tenant follows.
    At {
        id: Uuid,
        last: bool,
    },
    /// Look up the tenant with events after this one (the first when `None`).
    After(Option<Uuid>),
    Done,
}

pub struct Pages {
    tenant: TenantCursor,
    window: Window,
    filter: Filter,
    /// The last row returned: `(occurred_at, id)`.
    after: Option<(DateTime<Utc>, Uuid)>,
}

impl Pages {
    pub fn new(question: &Question) -> Self {
        let tenant = match question.tenants {
            Tenants::One(id) => TenantCursor::At {
                id: id.0,
                last: true,
            },
            Tenants::All => TenantCursor::After(None),
        };
        Self {
            tenant,
            window: question.window,
            filter: question.filter.clone(),
            after: None,
        }
    }

    /// The next page, encoded; `None` once every row has been returned.
    pub async fn next(
        &mut self,
        db: &DatabaseConnection,
        encoder: &mut Encoder,
        lookups: &Lookups,
    ) -> Result<Option<Chunk>> {
        loop {
            let (tenant, last) = match self.tenant {
                TenantCursor::Done => return Ok(None),
                TenantCursor::At { id, last } => (id, last),
                TenantCursor::After(previous) => {
                    self.tenant = match next_tenant(db, previous).await? {
                        Some(id) => TenantCursor::At { id, last: false },
                        None => TenantCursor::Done,
                    };
                    continue;
                }
            };
            let rows = self
                .query(tenant)
                .into_partial_model::<EventRow>()
                .all(db)
                .await?;
            if (rows.len() as u64) < PAGE_ROWS {
                self.after = None;
                self.tenant = match last {
                    true => TenantCursor::Done,
                    false => TenantCursor::After(Some(tenant)),
                };
            } else if let Some(row) = rows.last() {
                self.after = Some((row.occurred_at, row.id));
            }
            if !rows.is_empty() {
                let bytes = encoder.rows(rows.iter().map(|row| cells(row, lookups)))?;
                let rows = rows.len() as u64;
                return Ok(Some(Chunk { bytes, rows }));
            }
        }
    }

    fn query(&self, tenant: Uuid) -> Select<usage_events::Entity> {
        // One lower bound only: given two, SQLite may seek the index with the window's and
        // walk every earlier page again.
        let from = self.after.map_or(self.window.from, |(at, _)| at);
        let mut query = usage_events::Entity::find()
            .filter(Column::TenantId.eq(tenant))
            .filter(Column::OccurredAt.gte(from))
            .filter(Column::OccurredAt.lt(self.window.to));
        if let Some((at, id)) = self.after {
            // With the bound above: `(occurred_at, id) > (at, id)`.
            query = query.filter(
                Condition::any()
                    .add(Column::OccurredAt.gt(at))
                    .add(Column::Id.gt(id)),
            );
        }
        query
            .filter(self.filter.on_events())
            .order_by_asc(Column::OccurredAt)
            .order_by_asc(Column::Id)
            .limit(PAGE_ROWS)
    }
}

/// The smallest tenant id above `previous` that has events: one step of a loose index scan
/// on `(tenant_id, occurred_at)`.
async fn next_tenant(db: &DatabaseConnection, previous: Option<Uuid>) -> Result<Option<Uuid>> {
    let mut query = usage_events::Entity::find()
        .select_only()
        .column(Column::TenantId);
    if let Some(previous) = previous {
        query = query.filter(Column::TenantId.gt(previous));
    }
    let next = query
        .order_by_asc(Column::TenantId)
        .limit(1)
        .into_tuple::<Uuid>()
        .one(db)
        .await?;
    Ok(next)
}

fn cells<'a>(e: &'a EventRow, lookups: &'a Lookups) -> [Cell<'a>; 18] {
    let text = |s: String| Cell::Text(s.into());
    let user_text = |s: Option<&'a str>| s.map_or(Cell::Null, Cell::UserText);
    [
        text(e.id.to_string()),
        text(event_time(e.occurred_at)),
        text(TenantId(e.tenant_id).to_string()),
        e.key_id.map_or(Cell::Null, |k| text(KeyId(k).to_string())),
        user_text(lookups.key_name(e.key_id)),
        Cell::UserText(&e.endpoint),
        Cell::UserText(&e.method),
        Cell::Int(e.status_code.into()),
        Cell::Decimal(decimal_millis(e.latency_us)),
        Cell::Int(e.bytes_in),
        Cell::Int(e.bytes_out),
        Cell::Int(e.tokens_in),
        Cell::Int(e.tokens_out),
        Cell::Money(money(e.cost_nanos)),
        user_text(lookups.currency(e.tenant_id)),
        user_text(e.ip.as_deref()),
        user_text(e.user_agent.as_deref()),
        Cell::UserText(&e.source),
    ]
}
