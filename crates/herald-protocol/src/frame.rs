//! Newline-delimited framing.
//!
//! One WebSocket message may carry several JSON objects separated by `\n`, in both
//! directions. Decoding borrows from the message; encoding joins already-encoded
//! replies so each is serialized exactly once.

use crate::command::Command;
use bytes::{BufMut, Bytes, BytesMut};

/// Why a frame could not be decoded; the connection is then closed with 3501.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("command {index} of the frame is not valid JSON: {source}")]
    Json {
        index: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("frame is not valid UTF-8")]
    Utf8,
}

/// Iterates over the commands of one frame, skipping blank lines.
pub struct FrameDecoder<'a> {
    lines: std::str::Split<'a, char>,
    index: usize,
}

impl<'a> FrameDecoder<'a> {
    pub fn new(frame: &'a [u8]) -> Result<Self, DecodeError> {
        let text = std::str::from_utf8(frame).map_err(|_| DecodeError::Utf8)?;
        Ok(Self {
            lines: text.split('\n'),
            index: 0,
        })
    }
}

impl<'a> Iterator for FrameDecoder<'a> {
    type Item = Result<Command<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let line = self.lines.next()?;
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let index = self.index;
            self.index += 1;
            return Some(
                serde_json::from_str(line).map_err(|source| DecodeError::Json { index, source }),
            );
        }
    }
}

/// Joins encoded messages with `\n` into one frame.
pub fn pack_frame<'b>(messages: impl IntoIterator<Item = &'b Bytes>) -> Bytes {
    let mut iter = messages.into_iter();
    let Some(first) = iter.next() else {
        return Bytes::new();
    };
    let Some(second) = iter.next() else {
        return first.clone();
    };
    let mut out = BytesMut::with_capacity(first.len() + second.len() + 1);
    out.put_slice(first);
    out.put_u8(b'\n');
    out.put_slice(second);
    for message in iter {
        out.put_u8(b'\n');
        out.put_slice(message);
    }
    out.freeze()
}
