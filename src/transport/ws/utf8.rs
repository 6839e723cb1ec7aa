//! UTF-8 validation of a text message that arrives in fragments (RFC 6455 §8.1): a
//! fragment may end inside a code point, so each one is checked with the bytes of the
//! code point the previous one left open, and the message fails as soon as a byte
//! cannot belong to valid UTF-8, not only once it is whole.

use std::str;

/// The validation state of one text message (see the module docs).
#[derive(Debug, Default, Clone)]
pub(crate) struct Utf8Stream {
    /// The first bytes of a code point the last fragment ended inside of.
    open: [u8; 3],
    open_len: usize,
}

/// The text is not UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidUtf8;

impl Utf8Stream {
    /// Checks the next fragment. `Err` as soon as the bytes so far cannot begin valid
    /// UTF-8; a code point left open at the end is checked with the next fragment.
    pub(crate) fn push(&mut self, mut bytes: &[u8]) -> Result<(), InvalidUtf8> {
        if self.open_len > 0 {
            // Complete the open code point with the first bytes of this fragment.
            let width = code_point_width(self.open[0]);
            let take = (width - self.open_len).min(bytes.len());
            let mut point = [0u8; 4];
            point[..self.open_len].copy_from_slice(&self.open[..self.open_len]);
            point[self.open_len..self.open_len + take].copy_from_slice(&bytes[..take]);
            let have = self.open_len + take;
            self.open_len = 0;
            self.check(&point[..have])?;
            bytes = &bytes[take..];
            if self.open_len > 0 {
                return Ok(()); // still open: this fragment was all of its next bytes
            }
        }
        self.check(bytes)
    }

    /// Checks `bytes`, keeping a code point open at their end for the next fragment.
    fn check(&mut self, bytes: &[u8]) -> Result<(), InvalidUtf8> {
        match str::from_utf8(bytes) {
            Ok(_) => Ok(()),
            // `error_len` is `None` only when the bytes end inside a code point that could
            // still be completed.
            Err(err) if err.error_len().is_none() => {
                let open = &bytes[err.valid_up_to()..];
                self.open[..open.len()].copy_from_slice(open);
                self.open_len = open.len();
                Ok(())
            }
            Err(_) => Err(InvalidUtf8),
        }
    }

    /// The message is complete: `Err` if it ended inside a code point. Resets the state
    /// for the next message.
    pub(crate) fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let open = std::mem::take(&mut self.open_len);
        if open == 0 {
            Ok(())
        } else {
            Err(InvalidUtf8)
        }
    }
}

/// Bytes in the code point whose first byte is `lead`, for a lead byte that
/// `str::from_utf8` found to begin a possibly valid code point.
fn code_point_width(lead: u8) -> usize {
    match lead {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fragments_valid(parts: &[&[u8]]) -> bool {
        let mut stream = Utf8Stream::default();
        parts.iter().all(|p| stream.push(p).is_ok()) && stream.finish().is_ok()
    }

    #[test]
    fn a_code_point_split_across_fragments_is_valid() {
        let euro = "€".as_bytes(); // three bytes
        assert!(fragments_valid(&[
            b"price: ",
            &euro[..1],
            &euro[1..2],
            &euro[2..],
            b"!"
        ]));
        let emoji = "😀".as_bytes(); // four bytes
        assert!(fragments_valid(&[&emoji[..3], &emoji[3..]]));
        assert!(fragments_valid(&[&emoji[..1], b"", &emoji[1..]]));
    }

    #[test]
    fn invalid_bytes_fail_in_the_fragment_that_holds_them() {
        let mut stream = Utf8Stream::default();
        assert!(stream.push("κόσμε".as_bytes()).is_ok());
        // 0xED 0xA0 0x80 would be a UTF-16 surrogate: invalid from its second byte on.
        assert!(stream.push(&[0xED]).is_ok());
        assert_eq!(stream.push(&[0xA0, 0x80]), Err(InvalidUtf8));
        let mut stream = Utf8Stream::default();
        assert_eq!(stream.push(&[b'a', 0xFF]), Err(InvalidUtf8));
    }

    #[test]
    fn a_message_that_ends_inside_a_code_point_is_invalid() {
        let euro = "€".as_bytes();
        let mut stream = Utf8Stream::default();
        assert!(stream.push(&euro[..2]).is_ok());
        assert_eq!(stream.finish(), Err(InvalidUtf8));
        // ... and the state is reset for the next message.
        assert!(stream.push(b"ok").is_ok());
        assert!(stream.finish().is_ok());
    }

    proptest! {
        /// Any bytes, cut anywhere: valid exactly when `str::from_utf8` says the whole is.
        #[test]
        fn agrees_with_std_on_any_cut(
            bytes in prop::collection::vec(any::<u8>(), 0..40),
            text in ".{0,12}",
            cuts in prop::collection::vec(0usize..64, 0..6),
            use_text in any::<bool>(),
        ) {
            let bytes = if use_text { text.into_bytes() } else { bytes };
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            cuts.sort_unstable();
            let mut parts = Vec::new();
            let mut from = 0;
            for cut in cuts {
                parts.push(&bytes[from..cut]);
                from = cut;
            }
            parts.push(&bytes[from..]);
            prop_assert_eq!(fragments_valid(&parts), str::from_utf8(&bytes).is_ok());
        }
    }
}
