//! `POST /v1/events`: batches of events from services that meter themselves. The batch is
//! checked as a whole (every bad event reported), then written synchronously through the same
//! store as the batch writer, so the answer can say exactly how many events were new and how
//! many were already stored (a re-sent batch is counted once).

use chrono::Utc;
use std::collections::HashSet;

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect, Select,
};
use uuid::Uuid;

use crate::{
    entities::api_keys,
    error::{Error, ErrorKind, FieldError, Result},
    ids::{KeyId, TenantId},
    keys,
    metering::{Recorder, UsageEvent, live::LiveHub, store},
    tenancy::TenantScope,
};

mod parse;

pub use parse::{Attribution, EventIn, cost_nanos};

/// Who sends the batch; decides the tenant (never taken from the body) and the default key.
pub enum Ingester<'a> {
    /// A verified `X-API-Key`: its tenant; events default to the key.
    Key { tenant_id: TenantId, key_id: KeyId },
    /// A member allowed to manage keys, acting in their tenant.
    Member(&'a TenantScope),
}

/// What happened to a batch: `accepted + duplicates` = the batch size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Events stored now.
    pub accepted: u64,
    /// Events already stored (an earlier send), or repeated within the batch.
    pub duplicates: u64,
}

/// Validates and stores a batch. More than `max_batch` events -> 413; any invalid event ->
/// 422 listing every bad field as `/events/<i>/<field>`; database down -> 503.
pub async fn ingest(
    db: &DatabaseConnection,
    who: Ingester<'_>,
    raw: Vec<serde_json::Value>,
    max_batch: usize,
    live: &LiveHub,
    recorder: &Recorder,
) -> Result<Outcome> {
    check_size(raw.len(), max_batch)?;
    let to = who.attribution();
    let now = Utc::now();
    let total = raw.len();
    let mut events = Vec::with_capacity(total);
    let mut errors = Vec::new();
    for (index, raw) in raw.into_iter().enumerate() {
        let explicit_key = raw.get("key_id").is_some_and(|k| !k.is_null());
        match parse::event(index, raw, to, now) {
            Ok(event) => events.push((index, explicit_key, event)),
            Err(bad) => errors.push((index, bad)),
        }
    }
    errors.extend(foreign_keys(db, &who, &events).await?);
    if !errors.is_empty() {
        return Err(invalid(errors, total));
    }
    let events: Vec<UsageEvent> = events.into_iter().map(|(_, _, e)| e).collect();
    let accepted = store::insert_events(db, &events).await?;
    recorder.rollups_pending();
    // The live feed shows new calls only: a batch holding re-sent events is left out whole.
    if accepted == total as u64 {
        live.publish(&events);
    }
    Ok(Outcome {
        accepted,
        duplicates: total as u64 - accepted,
    })
}

impl Ingester<'_> {
    fn attribution(&self) -> Attribution {
        match self {
            Ingester::Key { tenant_id, key_id } => Attribution {
                tenant_id: *tenant_id,
                default_key: Some(*key_id),
            },
            Ingester::Member(scope) => Attribution {
                tenant_id: scope.tenant_id(),
                default_key: None,
            },
        }
    }

    /// The tenant's keys: where every `key_id` of the batch must be found.
    fn tenant_keys(&self) -> Select<api_keys::Entity> {
        match self {
            Ingester::Member(scope) => keys::store::scoped(scope),
            Ingester::Key { tenant_id, .. } => {
                api_keys::Entity::find().filter(api_keys::Column::TenantId.eq(tenant_id.0))
            }
        }
    }
}

fn check_size(count: usize, max: usize) -> Result<()> {
    if count == 0 {
        return Err(Error::invalid("/events", "must hold at least one event"));
    }
    if count > max {
        let detail = format!("A batch holds at most {max} events; this one has {count}.");
        return Err(
            Error::new(ErrorKind::PayloadTooLarge, detail.clone()).with_errors(vec![FieldError {
                detail,
                pointer: "/events".into(),
            }]),
        );
    }
    Ok(())
}

/// Errors for events naming a key that is not the caller tenant's (another tenant's key is
/// as unknown as a missing one).
async fn foreign_keys(
    db: &impl ConnectionTrait,
    who: &Ingester<'_>,
    events: &[(usize, bool, UsageEvent)],
) -> Result<Vec<(usize, Vec<FieldError>)>> {
    let named: Vec<Uuid> = events
        .iter()
        .filter(|(_, explicit, _)| *explicit)
        .filter_map(|(_, _, e)| e.key_id.map(|k| k.0))
        .collect();
    if named.is_empty() {
        return Ok(Vec::new());
    }
    let known: HashSet<Uuid> = who
        .tenant_keys()
        .select_only()
        .column(api_keys::Column::Id)
        .filter(api_keys::Column::Id.is_in(named))
        .into_tuple::<Uuid>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    Ok(events
        .iter()
        .filter(|(_, explicit, e)| *explicit && e.key_id.is_some_and(|k| !known.contains(&k.0)))
        .map(|(index, _, e)| {
            let key = e.key_id.map(|k| k.to_string()).unwrap_or_default();
            let error = FieldError {
                detail: format!("no API key {key} in this tenant"),
                pointer: format!("/events/{index}/key_id"),
            };
            (*index, vec![error])
        })
        .collect())
}

fn invalid(mut errors: Vec<(usize, Vec<FieldError>)>, total: usize) -> Error {
    errors.sort_by_key(|(index, _)| *index);
    let bad = errors.len();
    let errors = errors.into_iter().flat_map(|(_, e)| e).collect();
    Error::new(
        ErrorKind::Validation,
        format!("{bad} of {total} events are invalid; see `errors`."),
    )
    .with_errors(errors)
}
