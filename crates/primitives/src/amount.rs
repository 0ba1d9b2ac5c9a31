//! Amounts of the native coin in ngonka (1 GNK = 10^9 ngonka), with checked arithmetic only.

use std::fmt;

/// ngonka per GNK.
pub const NGONKA_PER_GNK: u128 = 1_000_000_000;

/// An amount in ngonka. Arithmetic is checked: overflow is an error the caller must handle.
/// In JSON it is a decimal string of ngonka, since u128 values exceed what JSON numbers carry exactly.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(pub u128);

impl serde::Serialize for Amount {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse::<u128>()
            .map(Amount)
            .map_err(|_| serde::de::Error::custom("expected ngonka as a decimal string"))
    }
}

impl Amount {
    /// Zero ngonka.
    pub const ZERO: Amount = Amount(0);

    /// `self + other`, or None on overflow.
    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    /// `self - other`, or None when `other` is larger.
    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }

    /// Parses `123` (ngonka), `123ngonka` or `1.5gnk` / `1.5GNK`.
    pub fn parse(text: &str) -> Option<Amount> {
        let text = text.trim();
        let lower = text.to_ascii_lowercase();
        if let Some(gnk) = lower.strip_suffix("gnk").filter(|rest| !rest.ends_with('n')) {
            // Whole ngonka only: a GNK amount with more than 9 fractional digits is refused, not rounded.
            let value = crate::Decimal::parse(gnk.trim()).ok().filter(|v| !v.is_negative())?;
            let scaled = value.checked_mul(crate::Decimal::from_int(NGONKA_PER_GNK as i128)?)?;
            let one = crate::Decimal::ONE.raw();
            if scaled.raw() % one != 0 {
                return None;
            }
            return u128::try_from(scaled.raw() / one).ok().map(Amount);
        }
        let digits = lower.strip_suffix("ngonka").unwrap_or(&lower);
        digits.trim().parse::<u128>().ok().map(Amount)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ngonka", self.0)
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ngonka_and_gnk() {
        assert_eq!(Amount::parse("42"), Some(Amount(42)));
        assert_eq!(Amount::parse("42ngonka"), Some(Amount(42)));
        assert_eq!(Amount::parse("1.5gnk"), Some(Amount(1_500_000_000)));
        assert_eq!(Amount::parse("2GNK"), Some(Amount(2_000_000_000)));
        assert_eq!(Amount::parse("-1gnk"), None);
        assert_eq!(Amount::parse("0.0000000001gnk"), None);
        assert_eq!(Amount::parse("0.000000001gnk"), Some(Amount(1)));
        assert_eq!(Amount::parse("abc"), None);
    }

    #[test]
    fn arithmetic_is_checked() {
        assert_eq!(Amount(u128::MAX).checked_add(Amount(1)), None);
        assert_eq!(Amount(1).checked_sub(Amount(2)), None);
    }
}
