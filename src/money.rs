//! Money at the API edge: integer nanos (1e-9 of a currency unit) rendered as exact decimal
//! strings, with their ISO currency. Never a float.

use serde::Serialize;
use utoipa::ToSchema;

/// An amount in one currency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Money {
    /// ISO 4217 code, e.g. `USD`.
    pub currency: String,
    /// Exact decimal string, at least two decimals: `"12.50"`, `"0.0000015"`.
    #[schema(example = "12.50")]
    pub amount: String,
}

impl Money {
    pub fn from_nanos(currency: impl Into<String>, nanos: i64) -> Self {
        Self {
            currency: currency.into(),
            amount: format_nanos(nanos),
        }
    }
}

/// 1_500_000 -> `"0.0015"`, 12_500_000_000 -> `"12.50"`, -1 -> `"-0.000000001"`.
pub fn format_nanos(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let abs = nanos.unsigned_abs();
    let (whole, fraction) = (abs / 1_000_000_000, abs % 1_000_000_000);
    let mut fraction = format!("{fraction:09}");
    while fraction.len() > 2 && fraction.ends_with('0') {
        fraction.pop();
    }
    format!("{sign}{whole}.{fraction}")
}

#[cfg(test)]
mod tests {
    use super::format_nanos;

    #[test]
    fn nanos_render_exactly() {
        assert_eq!(format_nanos(0), "0.00");
        assert_eq!(format_nanos(1_500_000), "0.0015");
        assert_eq!(format_nanos(12_500_000_000), "12.50");
        assert_eq!(format_nanos(1), "0.000000001");
        assert_eq!(format_nanos(-1), "-0.000000001");
        assert_eq!(format_nanos(i64::MIN), "-9223372036.854775808");
    }
}
