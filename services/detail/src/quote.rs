//! Quote ids: what PreviewOrder and PriceOrder told the caller, signed, so
//! that a later PriceOrder can show which lines moved since.
//!
//! A quote id is `base64url(payload || tag)` where the payload is a format
//! byte, the expiry (Unix ms, 8 bytes), the number of lines (2 bytes) and per
//! line the goods id (8), quantity (4), amount in fen (8) and payable in fen
//! (8), all big-endian; the tag is the first 16 bytes of HMAC-SHA256 over the
//! payload with the service's quote secret. The service keeps no state: any
//! instance that shares the secret can read any quote.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use pricing_record::{Fen, MoneyError};
use rust_decimal::Decimal;
use sha2::Sha256;

const FORMAT: u8 = 1;
const TAG_LEN: usize = 16;
const LINE_LEN: usize = 8 + 4 + 8 + 8;
const HEAD_LEN: usize = 1 + 8 + 2;

/// One line as it was quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotedLine {
    pub goods_id: u64,
    pub quantity: u32,
    /// Line amount after single-item activities, in fen.
    pub amount_fen: i64,
    /// What the line pays after cart promotions, in fen.
    pub payable_fen: i64,
}

impl QuotedLine {
    /// Amounts are rounded to the fen by the one rule (half-up; the engine's
    /// amounts are whole fen already). An amount beyond 64 bits of fen is an
    /// error, never a saturated quote.
    pub fn new(goods_id: u64, quantity: u32, amount: Decimal, payable: Decimal) -> Result<QuotedLine, MoneyError> {
        Ok(QuotedLine {
            goods_id,
            quantity,
            amount_fen: Fen::round(amount).to_i64()?,
            payable_fen: Fen::round(payable).to_i64()?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    pub expires_ms: i64,
    pub lines: Vec<QuotedLine>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    #[error("is not a quote id (bad encoding)")]
    Encoding,
    #[error("was not issued by this service (signature does not match)")]
    Signature,
    #[error("is malformed")]
    Malformed,
}

/// Signs and reads quote ids with one secret.
#[derive(Clone)]
pub struct QuoteSigner {
    /// HMAC-SHA256 keyed once (its inner and outer key blocks hashed):
    /// each quote clones it instead of hashing the key again.
    keyed: Hmac<Sha256>,
}

impl QuoteSigner {
    pub fn new(secret: &[u8]) -> QuoteSigner {
        #[expect(clippy::expect_used, reason = "HMAC takes keys of any length")]
        let keyed = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
        QuoteSigner { keyed }
    }

    fn tag(&self, payload: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = self.keyed.clone();
        mac.update(payload);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }

    pub fn sign(&self, quote: &Quote) -> String {
        let lines = &quote.lines[..quote.lines.len().min(u16::MAX as usize)];
        let mut buf = Vec::with_capacity(HEAD_LEN + lines.len() * LINE_LEN + TAG_LEN);
        buf.push(FORMAT);
        buf.extend_from_slice(&quote.expires_ms.to_be_bytes());
        buf.extend_from_slice(&(lines.len() as u16).to_be_bytes());
        for l in lines {
            buf.extend_from_slice(&l.goods_id.to_be_bytes());
            buf.extend_from_slice(&l.quantity.to_be_bytes());
            buf.extend_from_slice(&l.amount_fen.to_be_bytes());
            buf.extend_from_slice(&l.payable_fen.to_be_bytes());
        }
        let tag = self.tag(&buf);
        buf.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(buf)
    }

    /// Reads a quote id, checking its signature (in constant time).
    pub fn verify(&self, id: &str) -> Result<Quote, QuoteError> {
        let bytes = URL_SAFE_NO_PAD.decode(id).map_err(|_| QuoteError::Encoding)?;
        if bytes.len() < HEAD_LEN + TAG_LEN {
            return Err(QuoteError::Malformed);
        }
        let (payload, tag) = bytes.split_at(bytes.len() - TAG_LEN);
        let mut mac = self.keyed.clone();
        mac.update(payload);
        mac.verify_truncated_left(tag).map_err(|_| QuoteError::Signature)?;
        if payload[0] != FORMAT {
            return Err(QuoteError::Malformed);
        }
        #[expect(clippy::expect_used, reason = "payload holds at least HEAD_LEN bytes (checked above)")]
        let expires_ms = i64::from_be_bytes(payload[1..9].try_into().expect("8 bytes"));
        #[expect(clippy::expect_used, reason = "payload holds at least HEAD_LEN bytes (checked above)")]
        let n = u16::from_be_bytes(payload[9..11].try_into().expect("2 bytes")) as usize;
        let body = &payload[HEAD_LEN..];
        if body.len() != n * LINE_LEN {
            return Err(QuoteError::Malformed);
        }
        #[expect(clippy::expect_used, reason = "chunks_exact gives slices of exactly LINE_LEN bytes")]
        let lines = body
            .chunks_exact(LINE_LEN)
            .map(|c| QuotedLine {
                goods_id: u64::from_be_bytes(c[0..8].try_into().expect("8 bytes")),
                quantity: u32::from_be_bytes(c[8..12].try_into().expect("4 bytes")),
                amount_fen: i64::from_be_bytes(c[12..20].try_into().expect("8 bytes")),
                payable_fen: i64::from_be_bytes(c[20..28].try_into().expect("8 bytes")),
            })
            .collect();
        Ok(Quote { expires_ms, lines })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quote() -> Quote {
        Quote {
            expires_ms: 1_800_000_000_000,
            lines: vec![
                QuotedLine { goods_id: 30, quantity: 1, amount_fen: 3000, payable_fen: 2775 },
                QuotedLine { goods_id: 40, quantity: 2, amount_fen: 8000, payable_fen: 7400 },
            ],
        }
    }

    #[test]
    fn signed_quotes_read_back() {
        let signer = QuoteSigner::new(b"secret");
        let id = signer.sign(&quote());
        assert_eq!(signer.verify(&id), Ok(quote()));
    }

    #[test]
    fn lines_are_whole_fen_rounded_half_up_and_never_saturated() {
        let line = QuotedLine::new(1, 2, Decimal::new(30_00, 2), Decimal::new(27_75, 2)).unwrap();
        assert_eq!((line.amount_fen, line.payable_fen), (3000, 2775));
        // Half-up, as everywhere (this module rounded half-even before).
        let half = QuotedLine::new(1, 1, Decimal::new(1_005, 3), Decimal::new(1_025, 3)).unwrap();
        assert_eq!((half.amount_fen, half.payable_fen), (101, 103));
        let beyond = Decimal::from(i64::MAX);
        assert!(
            matches!(QuotedLine::new(1, 1, beyond, Decimal::ONE), Err(MoneyError::OutOfRange { .. })),
            "an amount beyond 64 bits of fen is an error, not i64::MAX"
        );
    }

    #[test]
    fn tampered_or_foreign_quotes_are_refused() {
        let signer = QuoteSigner::new(b"secret");
        let id = signer.sign(&quote());
        assert_eq!(QuoteSigner::new(b"other").verify(&id), Err(QuoteError::Signature));
        let mut bytes = URL_SAFE_NO_PAD.decode(&id).unwrap();
        bytes[20] ^= 1;
        assert_eq!(signer.verify(&URL_SAFE_NO_PAD.encode(&bytes)), Err(QuoteError::Signature));
        assert_eq!(signer.verify("not base64!"), Err(QuoteError::Encoding));
        assert_eq!(signer.verify("AAAA"), Err(QuoteError::Malformed));
    }
}
