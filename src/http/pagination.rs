//! List query parameters and the list envelope shared by every list endpoint.

use serde::{Deserialize, Serialize};
use utoipa::{
    IntoParams, ToSchema,
    openapi::{
        ObjectBuilder, Type,
        path::{Parameter, ParameterBuilder, ParameterIn},
    },
};

use crate::{
    error::Result,
    pagination::{DEFAULT_LIMIT, MAX_LIMIT, Page},
};

/// `?limit=&starting_after=&ending_before=` with ids of type `I`.
#[derive(Debug, Deserialize)]
pub struct ListParams<I> {
    pub limit: Option<u64>,
    pub starting_after: Option<I>,
    pub ending_before: Option<I>,
}

impl<I> IntoParams for ListParams<I> {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let param = |name: &str, description: &str, schema: ObjectBuilder| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Query)
                .description(Some(description))
                .schema(Some(schema))
                .build()
        };
        let limit = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1))
            .maximum(Some(MAX_LIMIT))
            .default(Some(DEFAULT_LIMIT.into()));
        let id = || ObjectBuilder::new().schema_type(Type::String);
        vec![
            param("limit", "Page size, 1 to 100 (default 20).", limit),
            param(
                "starting_after",
                "Return items older than this id (the last id of the previous page).",
                id(),
            ),
            param(
                "ending_before",
                "Return items newer than this id (the first id of the next page).",
                id(),
            ),
        ]
    }
}

impl<I: Copy + Into<uuid::Uuid>> ListParams<I> {
    pub fn page(&self) -> Result<Page> {
        Page::new(
            self.limit,
            self.starting_after.map(Into::into),
            self.ending_before.map(Into::into),
        )
    }
}

/// A page of results, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListOut<T> {
    pub data: Vec<T>,
    /// Whether more items exist beyond this page in the direction requested.
    pub has_more: bool,
}
