//! Fragments (MS-PSRP 2.2.4): how PSRP messages are cut into WS-Man-sized pieces. Big-endian.

use super::PsrpError;
use super::message::Message;
use std::collections::HashMap;

/// Bytes of a fragment header.
pub const HEADER_LEN: usize = 21;
const START: u8 = 0x01;
const END: u8 = 0x02;

/// One fragment of one PSRP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// Identifies the message; one per message, counting from 1.
    pub object_id: u64,
    /// Position within the message, from 0.
    pub fragment_id: u64,
    /// First fragment of the message.
    pub start: bool,
    /// Last fragment of the message.
    pub end: bool,
    /// The slice of the message.
    pub blob: Vec<u8>,
}

impl Fragment {
    /// Appends the wire form.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.object_id.to_be_bytes());
        out.extend_from_slice(&self.fragment_id.to_be_bytes());
        out.push(if self.start { START } else { 0 } | if self.end { END } else { 0 });
        out.extend_from_slice(&(self.blob.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.blob);
    }

    /// Every fragment in a buffer (one WS-Man stream may carry several).
    pub fn decode_all(mut bytes: &[u8]) -> Result<Vec<Fragment>, PsrpError> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            if bytes.len() < HEADER_LEN {
                return Err(PsrpError::new(format!("truncated fragment header ({} bytes)", bytes.len())));
            }
            let object_id = u64::from_be_bytes(bytes[0..8].try_into().expect("8 bytes"));
            let fragment_id = u64::from_be_bytes(bytes[8..16].try_into().expect("8 bytes"));
            let flags = bytes[16];
            let len = u32::from_be_bytes(bytes[17..21].try_into().expect("4 bytes")) as usize;
            let blob = bytes.get(HEADER_LEN..HEADER_LEN + len).ok_or_else(|| {
                PsrpError::new(format!("fragment {object_id}/{fragment_id} claims {len} bytes; fewer remain"))
            })?;
            out.push(Fragment {
                object_id,
                fragment_id,
                start: flags & START != 0,
                end: flags & END != 0,
                blob: blob.to_vec(),
            });
            bytes = &bytes[HEADER_LEN + len..];
        }
        Ok(out)
    }
}

/// Cuts outgoing messages into fragments no larger than a limit.
#[derive(Debug)]
pub struct Fragmenter {
    next_object_id: u64,
    max_blob: usize,
}

impl Fragmenter {
    /// `max_fragment` is the largest whole fragment (header included) the transport takes.
    pub fn new(max_fragment: usize) -> Self {
        Fragmenter { next_object_id: 1, max_blob: max_fragment.saturating_sub(HEADER_LEN).max(1) }
    }

    /// A message's fragments in wire form, back to back (what a WS-Man stream carries).
    pub fn wire(&mut self, message: &Message) -> Vec<u8> {
        let mut out = Vec::new();
        for fragment in self.fragment(&message.encode()) {
            fragment.encode(&mut out);
        }
        out
    }

    /// The fragments of one message, with a fresh object id.
    pub fn fragment(&mut self, message: &[u8]) -> Vec<Fragment> {
        let object_id = self.next_object_id;
        self.next_object_id += 1;
        let chunks: Vec<&[u8]> =
            if message.is_empty() { vec![&[][..]] } else { message.chunks(self.max_blob).collect() };
        let last = chunks.len() - 1;
        chunks
            .into_iter()
            .enumerate()
            .map(|(i, chunk)| Fragment {
                object_id,
                fragment_id: i as u64,
                start: i == 0,
                end: i == last,
                blob: chunk.to_vec(),
            })
            .collect()
    }
}

/// Reassembles incoming messages, refusing fragments out of order.
#[derive(Debug, Default)]
pub struct Defragmenter {
    partial: HashMap<u64, (u64, Vec<u8>)>,
}

impl Defragmenter {
    /// Takes a stream of fragments in wire form; returns the messages it completes, in order.
    pub fn messages(&mut self, wire: &[u8]) -> Result<Vec<Message>, PsrpError> {
        let mut out = Vec::new();
        for fragment in Fragment::decode_all(wire)? {
            if let Some(bytes) = self.push(fragment)? {
                out.push(Message::decode(&bytes)?);
            }
        }
        Ok(out)
    }

    /// Takes one fragment; returns the message it completes, if any.
    pub fn push(&mut self, fragment: Fragment) -> Result<Option<Vec<u8>>, PsrpError> {
        let Fragment { object_id, fragment_id, start, end, blob } = fragment;
        if start {
            if fragment_id != 0 {
                return Err(PsrpError::new(format!("object {object_id}: start fragment has id {fragment_id}")));
            }
            if end {
                return Ok(Some(blob));
            }
            self.partial.insert(object_id, (1, blob));
            return Ok(None);
        }
        let Some((expected, buffer)) = self.partial.get_mut(&object_id) else {
            return Err(PsrpError::new(format!("object {object_id}: fragment {fragment_id} without a start")));
        };
        if fragment_id != *expected {
            return Err(PsrpError::new(format!(
                "object {object_id}: fragment {fragment_id} arrived, {expected} expected"
            )));
        }
        *expected += 1;
        buffer.extend_from_slice(&blob);
        if end { Ok(self.partial.remove(&object_id).map(|(_, b)| b)) } else { Ok(None) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_layout_is_big_endian() {
        let mut out = Vec::new();
        Fragment { object_id: 1, fragment_id: 0, start: true, end: true, blob: b"abc".to_vec() }.encode(&mut out);
        assert_eq!(out, [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 3, b'a', b'b', b'c']);
        assert_eq!(Fragment::decode_all(&out).unwrap()[0].blob, b"abc");
    }

    #[test]
    fn long_messages_split_and_reassemble() {
        let message: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let mut fragmenter = Fragmenter::new(HEADER_LEN + 300);
        let fragments = fragmenter.fragment(&message);
        assert_eq!(fragments.len(), 4);
        assert!(fragments[0].start && !fragments[0].end && fragments[3].end);
        assert_eq!(fragmenter.fragment(b"x")[0].object_id, 2, "one object id per message");
        let mut wire = Vec::new();
        fragments.iter().for_each(|f| f.encode(&mut wire));
        let mut defragmenter = Defragmenter::default();
        let mut done = None;
        for f in Fragment::decode_all(&wire).unwrap() {
            done = defragmenter.push(f).unwrap().or(done);
        }
        assert_eq!(done.unwrap(), message);
    }

    #[test]
    fn messages_travel_as_wire_streams() {
        use super::super::message::{Destination, Guid, MessageType};
        let message = |kind| Message {
            destination: Destination::Client,
            kind,
            rpid: Guid::random(),
            pid: Guid::NIL,
            data: vec![b'x'; 700],
        };
        let (a, b) = (message(MessageType::PIPELINE_OUTPUT), message(MessageType::PIPELINE_STATE));
        let mut fragmenter = Fragmenter::new(HEADER_LEN + 256);
        let mut wire = fragmenter.wire(&a);
        wire.extend(fragmenter.wire(&b));
        let mut defragmenter = Defragmenter::default();
        let (head, tail) = wire.split_at(HEADER_LEN + 256);
        assert!(defragmenter.messages(head).unwrap().is_empty(), "a first fragment completes nothing");
        assert_eq!(defragmenter.messages(tail).unwrap(), [a, b]);
    }

    #[test]
    fn out_of_order_and_truncated_input_is_refused() {
        let mut fragments = Fragmenter::new(HEADER_LEN + 2).fragment(b"abcdef");
        let mut d = Defragmenter::default();
        d.push(fragments.remove(0)).unwrap();
        assert!(d.push(fragments.remove(1)).unwrap_err().0.contains("arrived, 1 expected"));
        assert!(Fragment::decode_all(&[0; 10]).is_err());
        let mut wire = Vec::new();
        Fragment { object_id: 1, fragment_id: 0, start: true, end: true, blob: vec![1; 8] }.encode(&mut wire);
        assert!(Fragment::decode_all(&wire[..wire.len() - 1]).unwrap_err().0.contains("fewer remain"));
    }
}
