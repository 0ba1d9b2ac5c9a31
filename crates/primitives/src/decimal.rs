//! A fixed-point decimal with 18 fractional digits, for fractional parameters and ratios in consensus
//! state. Consensus code never uses floats; every operation here is exact or truncates toward zero,
//! and overflow is reported, never wrapped.

use std::fmt;
use std::str::FromStr;

/// Number of fractional decimal digits.
pub const DECIMAL_PLACES: u32 = 18;
const SCALE: i128 = 1_000_000_000_000_000_000;

/// A signed fixed-point number: the value is `raw / 10^18`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Decimal(i128);

/// Why a string is not a decimal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid decimal `{0}`: expected digits with an optional sign and at most 18 fractional digits")]
pub struct DecimalParseError(String);

impl Decimal {
    /// Zero.
    pub const ZERO: Decimal = Decimal(0);
    /// One.
    pub const ONE: Decimal = Decimal(SCALE);

    /// The decimal whose raw scaled representation is `raw` (value = raw / 10^18).
    pub const fn from_raw(raw: i128) -> Decimal {
        Decimal(raw)
    }

    /// The raw scaled representation.
    pub const fn raw(self) -> i128 {
        self.0
    }

    /// An integer as a decimal, or None when out of range.
    pub fn from_int(value: i128) -> Option<Decimal> {
        value.checked_mul(SCALE).map(Decimal)
    }

    /// `numerator / denominator`, truncated; None when the denominator is zero or out of range.
    pub fn from_ratio(numerator: i128, denominator: i128) -> Option<Decimal> {
        Decimal::from_int(numerator)?.checked_div(Decimal::from_int(denominator)?)
    }

    /// Whether the value is below zero.
    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// Checked addition.
    pub fn checked_add(self, other: Decimal) -> Option<Decimal> {
        self.0.checked_add(other.0).map(Decimal)
    }

    /// Checked subtraction.
    pub fn checked_sub(self, other: Decimal) -> Option<Decimal> {
        self.0.checked_sub(other.0).map(Decimal)
    }

    /// Checked multiplication, truncated toward zero. Splitting both operands into integer and
    /// fractional parts keeps the intermediate products in range for any result that fits.
    pub fn checked_mul(self, other: Decimal) -> Option<Decimal> {
        let (a_int, a_frac) = (self.0 / SCALE, self.0 % SCALE);
        let (b_int, b_frac) = (other.0 / SCALE, other.0 % SCALE);
        let whole = a_int.checked_mul(b_int)?.checked_mul(SCALE)?;
        let cross = a_int.checked_mul(b_frac)?.checked_add(a_frac.checked_mul(b_int)?)?;
        let small = a_frac * b_frac / SCALE;
        whole.checked_add(cross)?.checked_add(small).map(Decimal)
    }

    /// Checked division, truncated toward zero; None when dividing by zero or out of range.
    pub fn checked_div(self, other: Decimal) -> Option<Decimal> {
        if other.0 == 0 {
            return None;
        }
        if let Some(scaled) = self.0.checked_mul(SCALE) {
            return Some(Decimal(scaled / other.0));
        }
        let whole = (self.0 / other.0).checked_mul(SCALE)?;
        let frac = (self.0 % other.0).checked_mul(SCALE)? / other.0;
        whole.checked_add(frac).map(Decimal)
    }

    /// `self × n` as an integer, truncated toward zero; None when out of range.
    pub fn mul_int(self, n: u128) -> Option<u128> {
        let n = i128::try_from(n).ok()?;
        let product = self.checked_mul(Decimal::from_int(n)?)?;
        u128::try_from(product.0 / SCALE).ok()
    }

    /// Parses `-12.345`-style text.
    pub fn parse(text: &str) -> Result<Decimal, DecimalParseError> {
        let error = || DecimalParseError(text.to_string());
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int_part.is_empty() && frac_part.is_empty()
            || !all_digits(int_part)
            || !all_digits(frac_part)
            || frac_part.len() > DECIMAL_PLACES as usize
        {
            return Err(error());
        }
        let int_value: i128 = if int_part.is_empty() { 0 } else { int_part.parse().map_err(|_| error())? };
        let mut frac_value: i128 =
            if frac_part.is_empty() { 0 } else { frac_part.parse().map_err(|_| error())? };
        frac_value *= 10i128.pow(DECIMAL_PLACES - frac_part.len() as u32);
        let magnitude =
            int_value.checked_mul(SCALE).and_then(|v| v.checked_add(frac_value)).ok_or_else(error)?;
        Ok(Decimal(if negative { -magnitude } else { magnitude }))
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let magnitude = self.0.unsigned_abs();
        let scale = SCALE.unsigned_abs();
        let (int_part, frac_part) = (magnitude / scale, magnitude % scale);
        if frac_part == 0 {
            return write!(f, "{sign}{int_part}");
        }
        let frac = format!("{frac_part:018}");
        write!(f, "{sign}{int_part}.{}", frac.trim_end_matches('0'))
    }
}

impl fmt::Debug for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Decimal({self})")
    }
}

impl FromStr for Decimal {
    type Err = DecimalParseError;
    fn from_str(text: &str) -> Result<Decimal, DecimalParseError> {
        Decimal::parse(text)
    }
}

impl serde::Serialize for Decimal {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Decimal {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Decimal::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        Decimal::parse(text).expect("valid decimal")
    }

    #[test]
    fn parses_and_prints() {
        for text in ["0", "1", "-1", "0.5", "0.334", "123.000000000000000001", "-0.25"] {
            assert_eq!(d(text).to_string(), text);
        }
        assert_eq!(d(".5"), d("0.5"));
        for bad in ["", ".", "1.2.3", "abc", "1e5", "0.1234567890123456789", "--1"] {
            assert!(Decimal::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn arithmetic_is_exact_or_truncates() {
        assert_eq!(d("0.8").checked_mul(d("60")), Some(d("48")));
        assert_eq!(d("1").checked_div(d("3")).map(|v| v.to_string()), Some("0.333333333333333333".into()));
        assert_eq!(d("1000000").checked_mul(d("1000000")), Some(d("1000000000000")));
        assert_eq!(d("-2.5").checked_mul(d("2")), Some(d("-5")));
        assert_eq!(d("1").checked_div(Decimal::ZERO), None);
        assert_eq!(d("0.8").mul_int(20), Some(16));
        assert_eq!(Decimal::from_ratio(1, 4), Some(d("0.25")));
        assert_eq!(Decimal::from_raw(i128::MAX).checked_add(Decimal::ONE), None);
        // Division by a large value takes the split path instead of overflowing.
        assert_eq!(d("100000000000000000000").checked_div(d("100000000000000000000")), Some(Decimal::ONE));
    }
}
