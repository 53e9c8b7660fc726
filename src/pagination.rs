//! Stripe-style cursor pagination over time-ordered (UUIDv7) ids, newest first:
//! `limit`, `starting_after` (older than), `ending_before` (newer than), and `has_more`.

use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect, Select,
};
use uuid::Uuid;

use crate::error::{Error, Result};

pub const DEFAULT_LIMIT: u64 = 20;
pub const MAX_LIMIT: u64 = 100;

/// Where a page starts.
#[derive(Clone, Copy, Debug, Default)]
pub enum Cursor {
    /// The newest items.
    #[default]
    First,
    /// Items older than this id.
    After(Uuid),
    /// Items newer than this id.
    Before(Uuid),
}

#[derive(Clone, Copy, Debug)]
pub struct Page {
    pub limit: u64,
    pub cursor: Cursor,
}

impl Page {
    /// Validates the raw parameters; both cursors at once is a 400.
    pub fn new(limit: Option<u64>, after: Option<Uuid>, before: Option<Uuid>) -> Result<Self> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(
                Error::bad_request(format!("`limit` must be between 1 and {MAX_LIMIT}."))
                    .with_errors(vec![crate::error::FieldError {
                        detail: format!("must be between 1 and {MAX_LIMIT}"),
                        pointer: "/limit".into(),
                    }]),
            );
        }
        let cursor = match (after, before) {
            (Some(_), Some(_)) => {
                return Err(Error::bad_request(
                    "Use either `starting_after` or `ending_before`, not both.",
                ));
            }
            (Some(id), None) => Cursor::After(id),
            (None, Some(id)) => Cursor::Before(id),
            (None, None) => Cursor::First,
        };
        Ok(Self { limit, cursor })
    }
}

/// One page of models, newest first, and whether more exist beyond it in that direction.
pub async fn fetch<E, C>(
    db: &impl ConnectionTrait,
    select: Select<E>,
    id: C,
    page: Page,
) -> Result<(Vec<E::Model>, bool)>
where
    E: EntityTrait,
    C: ColumnTrait,
{
    let (select, order) = match page.cursor {
        Cursor::First => (select, Order::Desc),
        Cursor::After(cursor) => (select.filter(id.lt(cursor)), Order::Desc),
        Cursor::Before(cursor) => (select.filter(id.gt(cursor)), Order::Asc),
    };
    let mut rows = select
        .order_by(id, order.clone())
        .limit(page.limit + 1)
        .all(db)
        .await?;
    let has_more = rows.len() as u64 > page.limit;
    rows.truncate(page.limit as usize);
    if matches!(order, Order::Asc) {
        rows.reverse();
    }
    Ok((rows, has_more))
}
