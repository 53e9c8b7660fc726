//! Typed, prefixed identifiers (`tnt_…`, `usr_…`, `key_…`, `aud_…`): a UUIDv7 rendered as 32
//! hex digits after the prefix, so ids sort by creation time and say what they name.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub Uuid);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}_{}", $prefix, self.0.simple())
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse(s, $prefix).map(Self)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                raw.parse().map_err(de::Error::custom)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some(concat!("^", $prefix, "_[0-9a-f]{32}$")))
                    .examples([concat!($prefix, "_0193a4b2c3d47e8f9a0b1c2d3e4f5a6b")])
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

fn parse(s: &str, prefix: &str) -> Result<Uuid, String> {
    let hex = s
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .filter(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| {
            format!("`{s}` is not a valid id (expected `{prefix}_` and 32 hex digits)")
        })?;
    Uuid::try_parse(hex).map_err(|err| err.to_string())
}

typed_id!(
    /// A tenant (merchant account).
    TenantId, "tnt"
);
typed_id!(
    /// A user (a person who logs in).
    UserId, "usr"
);
typed_id!(
    /// An API key.
    KeyId, "key"
);
typed_id!(
    /// An audit-log entry.
    AuditId, "aud"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_other_prefixes() {
        let id = TenantId::new();
        let text = id.to_string();
        assert!(text.starts_with("tnt_") && text.len() == 36);
        assert_eq!(text.parse::<TenantId>().unwrap(), id);
        assert!(text.replace("tnt_", "key_").parse::<TenantId>().is_err());
        assert!("tnt_xyz".parse::<TenantId>().is_err());
        let later = TenantId::new();
        assert!(later.to_string() > text, "ids sort by creation time");
    }
}
