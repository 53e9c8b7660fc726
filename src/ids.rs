//! Typed, prefixed identifiers (`tnt_…`, `usr_…`, `key_…`, `aud_…`): a UUIDv7 rendered as 32
//! hex digits after the prefix, so ids sort by creation time and say what they name.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use uuid::Uuid;

/// Room for a rendered id: a prefix of up to 15 bytes, `_` and 32 hex digits.
const RENDERED_MAX: usize = 48;

/// `<prefix>_<32 hex digits>` written into `buf`, without going through `fmt` (ids are in
/// every response; `/v1/ping` renders two per call).
fn render<'b>(prefix: &str, id: &Uuid, buf: &'b mut [u8; RENDERED_MAX]) -> &'b str {
    let n = prefix.len();
    buf[..n].copy_from_slice(prefix.as_bytes());
    buf[n] = b'_';
    id.simple().encode_lower(&mut buf[n + 1..n + 33]);
    std::str::from_utf8(&buf[..n + 33]).expect("an ASCII prefix and hex digits")
}

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
                f.write_str(render($prefix, &self.0, &mut [0; RENDERED_MAX]))
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
                serializer.serialize_str(render($prefix, &self.0, &mut [0; RENDERED_MAX]))
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

    #[test]
    fn ids_render_the_same_in_text_and_json() {
        let id = KeyId(Uuid::from_u128(0x0192_3b4c_5d6e_7f80_91a2_b3c4_d5e6_f708));
        assert_eq!(id.to_string(), "key_01923b4c5d6e7f8091a2b3c4d5e6f708");
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            "\"key_01923b4c5d6e7f8091a2b3c4d5e6f708\""
        );
        let audit = AuditId(Uuid::nil());
        assert_eq!(audit.to_string(), format!("aud_{}", "0".repeat(32)));
    }
}
